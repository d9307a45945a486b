"""Helpers shared by the benches: finding the real tracks and importing the project."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.config import load_settings  # noqa: E402


def shared_tracks() -> Path:
    """The real tracks folder, or exit with a clear message."""
    path = load_settings().shared_tracks_dir
    if path is None:
        sys.exit("the real tracks (../shared/data/tracks or TRACKER_SHARED_TRACKS) are not present")
    return path
