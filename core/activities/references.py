"""References to activities that keep no foreign key: a badge's earning activity, a
challenge's completing one and a route's representative. A distributed PostgreSQL keeps
every row of an activity with its athlete, and refuses to set part of such a key to NULL
(README, "Distributing by athlete"); routes belong to no athlete at all. So whatever
deletes activities clears these in the same transaction, as ON DELETE SET NULL did: the
jobs that own them notice a NULL (the badges are counted again, the route's figures are
worked out anew).

Named by table here rather than imported: activities sit below challenges and routes.
"""

from __future__ import annotations

from sqlalchemy import column, table, update
from sqlalchemy.orm import Session

# table: the column that names an activity
REFERENCES = {"badge_awards": "activity_id", "challenges": "completed_by", "routes": "representative_id"}


# The tables whose rows belong to the activity's athlete (a distributed PostgreSQL keeps
# them on the athlete's node: the update goes there alone).
OWN_ROWS = {"badge_awards", "challenges"}


def forget_activities(s: Session, user_id: int, activity_ids: list[int]) -> None:
    """Clear every reference to ``activity_ids``, activities of ``user_id``'s, before they
    are deleted in this transaction."""
    if not activity_ids:
        return
    for name, ref in REFERENCES.items():
        c, owner = column(ref), column("user_id")
        rows = table(name, c, owner)
        where = [c.in_(activity_ids)] + ([owner == user_id] if name in OWN_ROWS else [])
        s.execute(update(rows).where(*where).values({ref: None}))
