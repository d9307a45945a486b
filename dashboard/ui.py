"""Pieces every page uses: safe text, activity cards, tables, charts, the signed-in viewer."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import plotly.graph_objects as go
import plotly.io as pio
import streamlit as st
import streamlit.components.v1 as components

from core import units
from core.challenges.personal import describe
from core.text import fit, is_blank
from dashboard import assets, escape
from dashboard.queries import Viewer

SPORT_ICON = {"run": ":material/directions_run:", "ride": ":material/directions_bike:"}
CHART_LABEL_CHARS = 40  # a longer name is cut in a chart's labels (a table beside it shows it whole)


def plain(text: str | None) -> str:
    """User-written text for st.markdown, titles, captions and link labels, shown literally
    (``dashboard.escape.markdown``)."""
    return escape.markdown(text)


def strong(text: str | None) -> str:
    """User-written text in bold for st.markdown; nothing for blank text, whose ``****``
    would show as four asterisks (Markdown's bold needs a letter after ``**``). The ends are
    trimmed as JavaScript trims them: a byte-order mark there would keep ``**`` from bolding."""
    text = escape.trim(text)
    return f"**{plain(text)}**" if text else ""


def who(name: str | None, username: str) -> str:
    """How an athlete is named on a page: their display name, or @username when it shows
    nothing (empty, white space, or only invisible characters such as U+200B or U+3164)."""
    return f"@{username}" if is_blank(name) else name


def abbreviate(text: str | None, limit: int) -> str:
    """At most ``limit`` characters on one line, the last an ellipsis when cut between whole
    characters (never inside an emoji sequence or a flag): for places with a fixed width
    (chart labels) where the full text is shown elsewhere on the page."""
    return fit(text, limit)


def viewer() -> Viewer:
    v = st.session_state.get("viewer")
    if v is None:  # the entry script signs in first; a stray run stops here
        st.stop()
    return v


def moderator() -> Viewer:
    """The viewer of a moderators' page. Such a page is not in an athlete's navigation; one
    reached anyway says so and stops."""
    v = viewer()
    if v.role != "moderator":
        st.error("This page is for moderators.")
        st.stop()
    return v


def when(dt: datetime | None) -> str:
    """A moment in the viewer's time zone (their settings'), with its abbreviation."""
    return units.when(dt, ZoneInfo(viewer().zone))


def badges_line(badges: list[dict], lead: str = "New badge") -> str:
    """Markdown for the badges an activity earned: icon and name of each (names are the
    catalogue's, escaped all the same)."""
    if not badges:
        return ""
    names = " · ".join(f":material/{b['icon']}: {strong(b['name'])}" for b in badges)
    return f"{lead}{'s' if len(badges) > 1 else ''}: {names}"


def challenges_line(challenges: list[dict], unit_system: str) -> str:
    """Markdown for the challenges an activity completed."""
    if not challenges:
        return ""
    done = " · ".join(strong(describe(c["kind"], c["sport"], c["target"], unit_system)) for c in challenges)
    return f":material/task_alt: Challenge{'s' if len(challenges) > 1 else ''} completed: {done}"


def headline_figures(card: dict, unit_system: str) -> list[tuple[str, str]]:
    sport = card["sport"]
    speed = card.get("avg_speed_mps")
    return [("Distance", units.distance(card.get("distance_m"), unit_system)),
            ("Moving time", units.duration(card.get("moving_time_s"))),
            (units.pace_or_speed_word(sport).capitalize(), units.pace_or_speed(sport, speed, unit_system))]


# One static HTML table: st.table renders every cell through the Markdown renderer, which
# costs the browser a few milliseconds a cell (a 100 km ride has 400 cells of splits).
_TABLE_STYLE = (
    "<style>.tracker-table{border-collapse:collapse;width:100%;font-size:0.9rem;font-variant-numeric:tabular-nums}"
    ".tracker-table th{font-weight:600;color:#6b6b76;text-align:left;border-bottom:1px solid #d9d9de;"
    "padding:0.35rem 0.6rem}"
    ".tracker-table td{border-bottom:1px solid #ececf0;padding:0.35rem 0.6rem;overflow-wrap:anywhere}"
    ".tracker-table tr.mine td{font-weight:600;color:#fc4c02}"
    ".tracker-table-wrap{max-height:var(--h);overflow-y:auto}</style>"
)


def table_html(rows: list[dict], highlight: int | None = None) -> str:
    """The HTML of a table of ``rows`` (one dict per row, the first row's keys as headers).

    Every header and cell is escaped, so user-written text shows exactly as written.
    ``highlight`` is the index of a row to mark (the viewer's own).
    """
    columns = list(rows[0]) if rows else []
    head = "".join(f"<th>{escape.html_text(c)}</th>" for c in columns)
    lines = []
    for k, row in enumerate(rows):
        cells = "".join(f"<td>{escape.html_text(row.get(c))}</td>" for c in columns)
        lines.append(f"<tr class='mine'>{cells}</tr>" if k == highlight else f"<tr>{cells}</tr>")
    body = "".join(lines)
    return f"<table class='tracker-table'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def table(rows: list[dict], highlight: int | None = None, max_height_px: int | None = None) -> None:
    """Show rows as a light static table (see ``table_html``), scrolling past ``max_height_px``."""
    inner = table_html(rows, highlight)
    if max_height_px:
        inner = f"<div class='tracker-table-wrap' style='--h:{int(max_height_px)}px'>{inner}</div>"
    st.html(_TABLE_STYLE + inner)


# Charts in the app's colours and type, on white.
CHART_TEMPLATE = go.layout.Template(pio.templates["plotly_white"])
CHART_TEMPLATE.layout.font = {"family": '"Source Sans Pro", "Source Sans 3", "Helvetica Neue", Arial, sans-serif',
                              "color": "#242428", "size": 13}
CHART_TEMPLATE.layout.colorway = ["#fc4c02", "#2c7bb6", "#6b6b76", "#c0392b", "#7fbf3f"]


def plotly_chart(fig: go.Figure) -> None:
    """Draw one plotly figure with plotly's basic bundle (scatter, bar, pie) in a light frame.

    st.plotly_chart loads the whole plotly library into the page (4.7 MB of script to
    evaluate before the first chart shows); the basic bundle is a quarter of that, so a page
    with one chart is ready about a second sooner on a slow machine (bench/dashboard.py).
    A page with many charts is better served by st.plotly_chart, which loads its library
    once. Without the bundle installed (python -m dashboard.assets) this falls back to it.
    """
    fig.update_layout(template=CHART_TEMPLATE)
    if not assets.installed(assets.PLOTLY_BASIC):
        st.plotly_chart(fig, config={"displaylogo": False})
        return
    height = int(fig.layout.height or 450)
    spec = escape.json_text_for_script(fig.to_json())  # no text in the figure can end the script
    components.html(
        "<style>html,body{margin:0;padding:0}</style>"
        f"<div id='chart' class='tracker-chart' style='width:100%;height:{height}px'></div>"
        f"<script src='{assets.PLOTLY_BASIC_JS}'></script>"
        f"<script>const spec = {spec};"
        "Plotly.newPlot('chart', spec.data, spec.layout, {displaylogo: false, responsive: true});</script>",
        height=height + 4)
