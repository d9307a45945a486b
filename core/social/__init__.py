"""Social: follows, who may see what, the news feed, comments, kudos and leaderboards."""

# What athletes hide decides what others are shown of each activity's distance: registered
# with the activities layer below (``core.activities.shown``) whenever this package is used
# (``core.social.shown``).
from core.social import shown as _shown  # noqa: F401
