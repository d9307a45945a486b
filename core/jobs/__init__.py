"""Scheduled jobs: the worker loop and one module per job."""
