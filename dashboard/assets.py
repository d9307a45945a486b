"""Install the pages' browser assets (Leaflet, plotly's basic bundle) into ``dashboard/static``
so no page needs a CDN.

Streamlit serves ``dashboard/static`` at ``/app/static`` (``server.enableStaticServing``).
Each release tarball is fetched once from the npm registry (``TRACKER_NPM_REGISTRY`` to use a
mirror), checked against its published SHA-512 before anything is unpacked, and only the
files the pages need are written, with each package's licence beside them.

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
from dataclasses import dataclass
from pathlib import Path

STATIC = Path(__file__).resolve().parent / "static"
STAMP = STATIC / ".installed"  # written once every package below is in place (the Makefile's target)


@dataclass(frozen=True)
class Package:
    """One npm release: what to fetch, how to check it, and which of its files to keep."""

    name: str
    version: str
    sha512: str
    directory: str  # under dashboard/static
    files: tuple[str, ...]  # paths in the tarball, kept under ``target`` without their ``strip`` prefix
    dirs: tuple[str, ...] = ()
    strip: str = "package/dist"

    @property
    def target(self) -> Path:
        return STATIC / self.directory

    @property
    def marker(self) -> Path:
        return self.target / f".version-{self.version}"

    def local(self, name: str) -> Path:
        """Where a file of the tarball goes: under ``target``, without its ``strip`` prefix."""
        return self.target / Path(name).relative_to(self.strip if name.startswith(self.strip + "/") else "package")


LEAFLET = Package("leaflet", "1.9.4",
                  "nxS1ynzJOmOlHp+iL3FyWqK89GtNL8U8rvlMOsQdTTssxZwCXh8N2NB3GDQOL+YR3XnWyZAxwQixURb+FA74PA==", "leaflet",
                  ("package/dist/leaflet.js", "package/dist/leaflet.css", "package/LICENSE"),
                  ("package/dist/images/",))
# Plotly's own basic bundle (scatter, bar, pie): a quarter of the full library, for the pages
# that draw one chart (see dashboard.ui.plotly_chart). Same plotly.js release as the Python package.
PLOTLY_BASIC = Package("plotly.js-basic-dist-min", "4.1.1",
                       "1oNF8PeQx2hv/y7tqEVWKD3JGwn/MGEMQ8mL9HUwsaqG9FGy/OU5FHUHvzqbqxN4mnwZGI9abTiE775C4kkjMQ==", "plotly",
                       ("package/plotly-basic.min.js", "package/LICENSE"), strip="package")
PACKAGES = (LEAFLET, PLOTLY_BASIC)

LEAFLET_JS = "/app/static/leaflet/leaflet.js"
LEAFLET_CSS = "/app/static/leaflet/leaflet.css"
LEAFLET_IMAGES = "/app/static/leaflet/images/"
PLOTLY_BASIC_JS = "/app/static/plotly/plotly-basic.min.js"


def installed(package: Package) -> bool:
    return package.marker.exists() and package.local(package.files[0]).exists()


def install_package(package: Package, force: bool = False) -> Path:
    """Fetch, verify and unpack one package; a no-op when this version is already there."""
    if installed(package) and not force:
        return package.target
    registry = os.environ.get("TRACKER_NPM_REGISTRY", "https://registry.npmjs.org").rstrip("/")
    url = f"{registry}/{package.name}/-/{package.name}-{package.version}.tgz"
    with urllib.request.urlopen(url, timeout=60) as response:
        data = response.read()
    digest = base64.b64encode(hashlib.sha512(data).digest()).decode()
    if digest != package.sha512:
        raise RuntimeError(f"{url}: SHA-512 mismatch, refusing to install it")
    package.target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            name = member.name
            wanted = name in package.files or any(name.startswith(d) for d in package.dirs)
            if not member.isfile() or not wanted:
                continue
            out = package.local(name)
            if ".." in out.relative_to(package.target).parts:
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(tar.extractfile(member).read())
    package.marker.write_text(url + "\n")
    return package.target


def install(force: bool = False) -> list[Path]:
    """Every package the pages need; then the stamp the Makefile waits for."""
    paths = [install_package(package, force) for package in PACKAGES]
    STAMP.write_text("".join(f"{p.name} {p.version}\n" for p in PACKAGES))
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="download again even if present")
    args = parser.parse_args(argv)
    try:
        install(force=args.force)
    except (OSError, RuntimeError) as exc:
        print(f"could not install the browser assets: {exc}", file=sys.stderr)
        return 1
    for package in PACKAGES:
        print(f"{package.name} {package.version} in {package.target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
