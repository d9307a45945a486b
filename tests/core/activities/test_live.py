"""Live statistics and spoken cues, point by point."""

import pytest

from core.activities.cues import CuePrefs, cue_text
from core.activities.live import LiveStats
from core.units import speak_duration

T0 = 1_700_000_000.0


def feed(live, n, step=5.0, speed=3.0, t0=T0, lat0=46.05):
    for i in range(n):
        live.add(t0 + i * step, lat0 + i * step * speed / 111_180, 14.5)


def test_distance_time_and_pace_update_as_points_arrive():
    """A steady 3 m/s run: distance, moving time, current and average pace."""
    live = LiveStats("run")
    feed(live, 201)
    snap = live.snapshot()
    assert snap["distance_m"] == pytest.approx(3000, rel=0.01)
    assert snap["moving_s"] == 1000
    assert snap["avg_pace_s_per_km"] == pytest.approx(333.3, rel=0.01)
    assert snap["current_pace_s_per_km"] == pytest.approx(333.3, rel=0.02)


def test_the_snapshot_is_rounded_to_tenths_and_hundredths():
    """Every figure sent with an ack is rounded to tenths or hundredths, and a
    stationary athlete has no pace."""
    live = LiveStats("ride")
    feed(live, 37, step=3.0, speed=7.31)
    snap = live.snapshot()
    window = list(live._window)
    current = (window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0])
    avg = live.distance_m / live.moving_s
    assert snap == {
        "elapsed_s": round(live.last_t - live.first_t, 1), "moving_s": round(live.moving_s, 1),
        "distance_m": round(live.distance_m, 1), "current_speed_mps": round(current, 2),
        "avg_speed_mps": round(avg, 2), "current_pace_s_per_km": round(1000 / current, 1),
        "avg_pace_s_per_km": round(1000 / avg, 1)}
    assert all(len(repr(v).split(".")[1]) <= 2 for v in snap.values())
    still = LiveStats("run")
    for i in range(10):
        still.add(T0 + 5 * i, 46.05, 14.5)
    assert still.snapshot()["current_pace_s_per_km"] is None
    assert still.snapshot()["avg_pace_s_per_km"] is None
    assert LiveStats("run").snapshot()["elapsed_s"] == 0.0


def test_a_cue_comes_at_each_kilometre_with_the_time_at_the_mark():
    """Cues every km carry the time when the mark was passed, not when the batch ended."""
    live = LiveStats("run")
    feed(live, 402)
    cues = live.due_cues()
    assert len(cues) == 6
    assert cues[0] == "1 kilometre. Time 5 minutes 33 seconds. Average pace 5 minutes 33 per kilometre."
    assert cues[4].startswith("5 kilometres. Time 27 minutes 47 seconds.")
    assert live.due_cues() == []


def test_time_cues_and_chosen_fields():
    """Every 10 minutes, speaking only distance and speed for a ride."""
    live = LiveStats("ride", CuePrefs(fields=("distance", "pace"), every_km=None, every_min=10))
    feed(live, 401, step=3.0, speed=8.0)
    cues = live.due_cues()
    assert len(cues) == 2
    assert cues[0] == "Distance 4.8 kilometres. Average speed 28.8 kilometres per hour."


def test_pausing_stops_time_and_distance():
    """Points while paused count for nothing."""
    live = LiveStats("run")
    feed(live, 101)
    live.pause()
    feed(live, 50, t0=T0 + 505, lat0=46.2)
    live.resume()
    before = live.snapshot()
    assert before["moving_s"] == 500
    assert before["distance_m"] == pytest.approx(1500, rel=0.01)


def test_a_spike_is_ignored():
    """A fix 2 km away for one point adds nothing."""
    live = LiveStats("run")
    feed(live, 20)
    live.add(T0 + 100, 46.07, 14.5)
    live.add(T0 + 105, 46.05 + 21 * 15 / 111_180, 14.5)
    assert live.snapshot()["distance_m"] == pytest.approx(21 * 15, rel=0.05)


def test_spoken_forms():
    """Durations and the seed's example sentence."""
    assert speak_duration(3725) == "1 hour 2 minutes 5 seconds"
    assert cue_text("run", CuePrefs(), 1630, 5000, {"avg_speed_mps": 5000 / 1630}) == \
        "5 kilometres. Time 27 minutes 10 seconds. Average pace 5 minutes 26 per kilometre."


def test_prefs_round_trip_through_settings():
    """Preferences survive being stored in a user's settings."""
    prefs = CuePrefs(fields=("time",), every_km=2.0, every_min=5.0)
    assert CuePrefs.from_settings({"cues": prefs.to_settings()}) == prefs


def run_with_pauses(pause_at: list[tuple[float, float]], n: int = 120) -> list[tuple]:
    """A steady run's points, 5 s apart, none logged while paused (as phones do)."""
    points = []
    for k in range(n):
        t = T0 + 5 * k
        if not any(a < t < b for a, b in pause_at):
            points.append((t, 46.05 + k * 15 / 111_180, 14.5))
    return points


@pytest.mark.parametrize("logged_while_paused", [True, False])
def test_replayed_stats_match_the_live_ones_across_pauses(logged_while_paused):
    """Stats rebuilt from stored points and pause intervals equal the ones kept live, and
    paused time adds neither moving time nor distance, whether or not the device logged
    points while paused."""
    from core.activities.live import replay_live

    pauses = [(T0 + 197.5, T0 + 347.5), (T0 + 452.5, T0 + 457.5)]
    points = [(T0 + 5 * k, 46.05 + k * 15 / 111_180, 14.5) for k in range(120)] if logged_while_paused \
        else run_with_pauses(pauses)
    live = LiveStats("run")
    todo = list(pauses)
    for p in points:
        while todo and todo[0][0] < p[0]:
            start, end = todo[0]
            if not live.paused:
                live.pause(at=start)
            if end < p[0]:
                live.resume(at=end)
                todo.pop(0)
            else:
                break
        live.add(*p)
    replayed = replay_live("run", points, pauses)
    assert replayed.snapshot() == live.snapshot()
    paused = sum(b - a for a, b in pauses)
    assert replayed.moving_s == pytest.approx(595 - paused)
    # 3 m/s while moving; nothing counted across the pauses.
    assert replayed.distance_m == pytest.approx(3 * (595 - paused), rel=0.05)


def test_commands_synced_before_the_points_still_pause_them():
    """An offline device sends its pause and resume before the points: the live figures
    come out as if they had arrived in order."""
    in_order = LiveStats("run")
    commands_first = LiveStats("run")
    commands_first.pause(at=T0 + 97.5)
    commands_first.resume(at=T0 + 197.5)
    for k in range(60):
        t = T0 + 5 * k
        if t > T0 + 97.5 and not in_order.paused and t < T0 + 197.5:
            in_order.pause(at=T0 + 97.5)
        if t > T0 + 197.5 and in_order.paused:
            in_order.resume(at=T0 + 197.5)
        for live in (in_order, commands_first):
            live.add(t, 46.05 + k * 15 / 111_180, 14.5)
    assert commands_first.snapshot() == in_order.snapshot()
    assert commands_first.moving_s == pytest.approx(295 - 100)


def test_a_replay_of_a_paused_activity_stays_paused():
    """An activity paused now (its last interval open-ended) is rebuilt paused."""
    from core.activities.live import replay_live

    points = [(T0 + 5 * k, 46.05 + k * 1e-4, 14.5) for k in range(10)]
    replayed = replay_live("run", points, [(T0 + 46, float("inf"))])
    assert replayed.paused
    before = replayed.snapshot()
    replayed.add(T0 + 100, 46.06, 14.5)  # logged while paused: the clock moves, nothing else
    after = replayed.snapshot()
    # Only the second between the last point (45 s) and the pause (46 s) was moving.
    assert after["distance_m"] == before["distance_m"] and after["moving_s"] == before["moving_s"] + 1
    assert after["elapsed_s"] - before["elapsed_s"] == 55
