"""Activities: their tables, lifecycle, point ingest, file imports, summaries, live statistics
and spoken cues, and the open activities the Live page shows."""
