"""Social: follows, who may see what, the news feed, comments, kudos and leaderboards."""
