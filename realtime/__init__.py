"""The device-facing half: websocket ingest server, device client and simulator."""
