"""Activities made from phone apps' bare GPS fixes (Traccar Client, OsmAnd, OwnTracks):
which activity a fix belongs to, storing fixes, their motion hints, and the sport."""
