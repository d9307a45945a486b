"""The HTTP ingest service: phone apps (OsmAnd protocol, OwnTracks) and the REST API.

``python -m realtime.http --host H --port P`` runs it (realtime/http/__main__.py). It shares
the websocket server's ingest path, validation, durability and live stats: see
realtime/http/service.py, and docs/phone-apps.md for how to set the apps up.
"""
