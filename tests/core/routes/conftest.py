"""The trimming circles' offsets are a secret draw; tests draw them from a seeded generator
so that a route's polyline is the same in every run."""

import random

import pytest

from core.routes import matching


@pytest.fixture(autouse=True)
def seeded_trim_offsets(monkeypatch):
    monkeypatch.setattr(matching, "_SECRET", random.Random(5))
