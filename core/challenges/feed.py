"""The device protocol's feed answer: a page of the news feed with each activity's badges.

One function for every client that asks for it (the websocket and REST ingest, and
``python -m core feed --json``), so each gets the same items, with the figures the
viewer is shown (``core.social.privacy``) and the badges the viewer may see."""

from __future__ import annotations

from sqlalchemy.orm import Session

from core.challenges.award_reads import awards_for
from core.challenges.badges import shown
from core.social.feed import feed_item, feed_page
from core.social.shown import shown_figures


def feed_answer(s: Session, user_id: int, cursor: str | None, limit: int) -> dict:
    """``{"items": [...], "next_cursor": ...}`` for ``user_id`` (``core.social.feed.CursorError``
    for a cursor that is not one)."""
    page = feed_page(s, user_id, cursor=cursor, limit=limit)
    earned = awards_for(s, [a.id for a in page.items])
    figures = shown_figures(s, user_id, page.items)
    items = [{**feed_item(a, figures.get(a.id)),
              "badges": [b.code for b in shown(earned[a.id], a.user_id == user_id, figures.get(a.id))]} for a in page.items]
    return {"items": items, "next_cursor": page.next_cursor}
