"""Install the map's browser assets (Leaflet) into ``dashboard/static`` so no page needs a CDN.

Streamlit serves ``dashboard/static`` at ``/app/static`` (``server.enableStaticServing``).
The release tarball is fetched once from the npm registry (``TRACKER_NPM_REGISTRY`` to use a
mirror), checked against its published SHA-512 before anything is unpacked, and only the
files the map needs are written, with Leaflet's licence beside them.

    python -m dashboard.assets [--force]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import os
import sys
import tarfile
import urllib.request
from pathlib import Path

STATIC = Path(__file__).resolve().parent / "static"
LEAFLET_VERSION = "1.9.4"
LEAFLET_SHA512 = "nxS1ynzJOmOlHp+iL3FyWqK89GtNL8U8rvlMOsQdTTssxZwCXh8N2NB3GDQOL+YR3XnWyZAxwQixURb+FA74PA=="
WANTED = ("package/dist/leaflet.js", "package/dist/leaflet.css", "package/LICENSE")
WANTED_DIRS = ("package/dist/images/",)
TARGET = STATIC / "leaflet"
MARKER = TARGET / f".version-{LEAFLET_VERSION}"

LEAFLET_JS = "/app/static/leaflet/leaflet.js"
LEAFLET_CSS = "/app/static/leaflet/leaflet.css"
LEAFLET_IMAGES = "/app/static/leaflet/images/"


def installed() -> bool:
    return MARKER.exists() and (TARGET / "leaflet.js").exists()


def install(force: bool = False) -> Path:
    """Fetch, verify and unpack Leaflet; a no-op when this version is already there."""
    if installed() and not force:
        return TARGET
    registry = os.environ.get("TRACKER_NPM_REGISTRY", "https://registry.npmjs.org").rstrip("/")
    url = f"{registry}/leaflet/-/leaflet-{LEAFLET_VERSION}.tgz"
    with urllib.request.urlopen(url, timeout=60) as response:
        data = response.read()
    digest = base64.b64encode(hashlib.sha512(data).digest()).decode()
    if digest != LEAFLET_SHA512:
        raise RuntimeError(f"{url}: SHA-512 mismatch, refusing to install it")
    TARGET.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            name = member.name
            if not member.isfile() or not (name in WANTED or name.startswith(WANTED_DIRS)):
                continue
            relative = Path(name).relative_to("package/dist" if name.startswith("package/dist/") else "package")
            if ".." in relative.parts:
                continue
            out = TARGET / relative
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(tar.extractfile(member).read())
    MARKER.write_text(url + "\n")
    return TARGET


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="download again even if present")
    args = parser.parse_args(argv)
    try:
        path = install(force=args.force)
    except (OSError, RuntimeError) as exc:
        print(f"could not install Leaflet: {exc}", file=sys.stderr)
        return 1
    print(f"Leaflet {LEAFLET_VERSION} in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
