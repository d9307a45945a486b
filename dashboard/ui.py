"""Pieces every page uses: safe text, activity cards, the signed-in viewer."""

from __future__ import annotations

import re

import streamlit as st

from dashboard import fmt
from dashboard.queries import Viewer

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:&])")


def plain(text: str | None) -> str:
    """User-written text for st.markdown: every markup character escaped, so it shows literally."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text or "")


def viewer() -> Viewer:
    v = st.session_state.get("viewer")
    if v is None:  # the entry script signs in first; a stray run stops here
        st.stop()
    return v


def headline_figures(card: dict, units: str) -> list[tuple[str, str]]:
    sport = card["sport"]
    speed = card.get("avg_speed_mps")
    return [("Distance", fmt.distance(card.get("distance_m"), units)),
            ("Moving time", fmt.duration(card.get("moving_time_s"))),
            ("Pace" if sport == "run" else "Speed", fmt.pace_or_speed(sport, speed, units))]
