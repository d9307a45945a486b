"""The sport of a fix stream without one: the speeds decide, the app's activity types settle
only the uncertain middle."""

from __future__ import annotations

from core.devices.sport import RIDE_P90_MPS, accuracy, hinted_sport, infer_sport
from core.tracks.track import track_from_rows


def steady(speed_mps: float, n: int = 400):
    """A straight line north at a steady speed, a fix a second."""
    return track_from_rows([(1_750_000_000.0 + i, 45.0 + i * speed_mps / 111_195.0, 7.0) for i in range(n)])


def test_speeds_decide_far_from_the_bar():
    assert infer_sport(steady(3.0)) == "run"
    assert infer_sport(steady(8.0)) == "ride"
    # Far from the bar the phone's activity types change nothing.
    assert infer_sport(steady(8.0), ["running"] * 100) == "ride"
    assert infer_sport(steady(1.0 + RIDE_P90_MPS - 3.0), ["on_bicycle"] * 100) == "run"


def test_a_clear_majority_of_activity_types_settles_the_middle():
    middle = steady(RIDE_P90_MPS - 0.3)
    assert infer_sport(middle) == "run"
    assert infer_sport(middle, ["on_bicycle"] * 30 + ["still"] * 50 + ["on_foot"] * 5) == "ride"
    assert infer_sport(middle, ["on_bicycle"] * 15 + ["running"] * 15) == "run"  # no majority: the speeds
    assert hinted_sport(["on_bicycle"] * 10) is None  # too few
    assert hinted_sport(["walking"] * 15 + ["running"] * 10) == "run"


def test_the_rule_names_most_real_recordings(shared_tracks):
    result = accuracy(shared_tracks, intervals=(0.0,))
    assert result["recordings"] >= 40
    assert result["by_interval"][0.0]["share"] >= 0.9
