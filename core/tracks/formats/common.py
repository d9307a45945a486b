"""What the format readers share: the error they raise, XML parsing and time and number
fields."""

from __future__ import annotations

from datetime import UTC, datetime
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as safe_et
import numpy as np


class TrackFileError(ValueError):
    """A file that cannot be imported; the message says why."""


def reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


def parse_xml(data: bytes) -> Element:
    # forbid_dtd refuses any DOCTYPE, which rules out entity expansion and external entities.
    return safe_et.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)


def local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def epoch(value: datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def parse_time(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return epoch(datetime.fromisoformat(text.strip().replace("Z", "+00:00")))
    except ValueError:
        return None


def float_or_none(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if np.isfinite(value) else None


def extension_values(elements) -> tuple[float | None, float | None]:
    """Heart rate and cadence from GPX extension elements (Garmin, Cluetrust and others)."""
    hr = cad = None
    for root in elements:
        for el in root.iter():
            tag = local_name(el.tag).lower()
            if tag in ("hr", "heartrate") and hr is None:
                hr = float_or_none(el.text)
            elif tag in ("cad", "cadence") and cad is None:
                cad = float_or_none(el.text)
    return hr, cad


def child_text(el: Element, *path: str) -> str | None:
    node = el
    for part in path:
        node = next((c for c in node if local_name(c.tag) == part), None)
        if node is None:
            return None
    return node.text
