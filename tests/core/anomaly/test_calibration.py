"""Recalibration learns from moderators in both directions: dismissed flags above the
threshold raise it, confirmed samples of cleared activities below it lower it (each sample
weighed as the cleared activities it stands for, once SAMPLE_MIN samples are decided), by
at most MAX_STEP per recalibration; on both databases."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from core.accounts.users import create_user
from core.activities.tables import Activity
from core.anomaly.calibration import (
    CALIBRATION_MIN,
    MAX_STEP,
    SAMPLE_MIN,
    SAMPLE_WEIGHT,
    calibration,
    decided_cases,
    flag_precision,
    recalibrate,
    threshold,
)
from core.anomaly.model import DEFAULT_THRESHOLD
from core.anomaly.moderation import decide, queue
from core.anomaly.scoring import SAMPLE_BAND, SAMPLE_RATE, Scoring, record_verdict
from core.config import load_settings
from core.storage.base import utcnow


@pytest.fixture
def settings(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACKER_DATA_DIR", str(tmp_path))
    return load_settings()


class Moderation:
    """An athlete's completed activities, each given a verdict as scoring writes it (flagged at
    or above the threshold, else clear or drawn for the sample), and a moderator deciding."""

    def __init__(self, s):
        tag = f"c{uuid.uuid4().hex[:8]}"
        self.s = s
        self.athlete = create_user(s, f"{tag}_athlete")
        self.moderator = create_user(s, f"{tag}_mod", role="moderator")

    def scored(self, score: float, limit: float, sampled: bool = False) -> int:
        activity = Activity(user_id=self.athlete.id, sport="run", status="completed", title="run",
                            visibility="public", start_time=utcnow() - timedelta(hours=1), completed_at=utcnow(),
                            distance_m=5000.0, moving_time_s=1500.0)
        self.s.add(activity)
        self.s.flush()
        flag = record_verdict(self.s, activity.id, Scoring(
            flagged=score >= limit, score=score, reasons=[], codes="", verdict={}, features={}, fingerprint=None,
            centroid=None, model_version="test", sampled=sampled and score < limit))
        assert flag.status == ("flagged" if score >= limit else "sampled" if sampled else "clear")
        return activity.id

    def decided(self, action: str, scores, limit: float, sampled: bool = False) -> None:
        for score in scores:
            activity_id = self.scored(score, limit, sampled)
            assert [f.activity_id for f, _ in queue(self.s, limit=10_000)].count(activity_id) == 1
            decide(self.s, activity_id, self.moderator, action)


def recalibrated(session, settings, times: int) -> list[float]:
    """The thresholds ``times`` recalibrations in a row arrive at."""
    return [recalibrate(session, settings)["threshold"] for _ in range(times)]


def test_the_sample_weight_is_the_sample_rate_inverted():
    assert SAMPLE_WEIGHT == pytest.approx(1 / SAMPLE_RATE) and 0 < SAMPLE_RATE < 1 and 0 < SAMPLE_BAND < 0.3


def test_dismissed_flags_above_the_threshold_raise_it(session, settings):
    m = Moderation(session)
    limit = threshold(settings)
    assert limit == DEFAULT_THRESHOLD
    m.decided("confirm", [0.75, 0.8, 0.85, 0.9, 0.95], limit)
    m.decided("dismiss", [0.5, 0.55, 0.6, 0.62, 0.65], limit)
    # Up towards 0.75, where the decisions separate perfectly, MAX_STEP at a time.
    result = recalibrate(session, settings)
    assert result["changed"] and result["threshold"] == pytest.approx(0.55) and result["target"] == pytest.approx(0.75)
    assert recalibrated(session, settings, 5) == pytest.approx([0.6, 0.65, 0.7, 0.75, 0.75])
    result = recalibrate(session, settings)
    assert not result["changed"] and result["threshold"] == pytest.approx(0.75) and result["f1"] == 1.0
    assert threshold(settings) == pytest.approx(0.75)
    precision = flag_precision(session)
    assert precision["decided"] >= 10 and precision["samples"] == 0


def test_confirmed_samples_scored_below_the_threshold_lower_it(session, settings):
    m = Moderation(session)
    # First the flags alone: the false alarms near the threshold raise it to 0.6.
    m.decided("confirm", [0.6, 0.7, 0.8, 0.9, 0.95], 0.5)
    m.decided("dismiss", [0.5, 0.52, 0.54, 0.56, 0.58], 0.5)
    assert recalibrated(session, settings, 2) == pytest.approx([0.55, 0.6])
    limit = threshold(settings)
    # Then the random sample of what it cleared: moderators find cheats scored just below it.
    m.decided("confirm", [0.47, 0.5, 0.55], limit, sampled=True)
    m.decided("dismiss", [0.46], limit, sampled=True)
    cases = [c for c in decided_cases(session) if c.sample]
    assert sorted((c.score, c.cheat) for c in cases) == [(0.46, False), (0.47, True), (0.5, True), (0.55, True)]
    # Fewer than SAMPLE_MIN decided samples do not count yet.
    assert SAMPLE_MIN == 5
    result = recalibrate(session, settings)
    assert not result["changed"] and result["threshold"] == pytest.approx(limit)
    assert calibration(settings)["samples"] == 0 and calibration(settings)["samples_decided"] == 4
    m.decided("confirm", [0.52], limit, sampled=True)
    result = recalibrate(session, settings)
    assert result["changed"] and result["threshold"] == pytest.approx(0.55) and result["target"] == pytest.approx(0.47)
    assert calibration(settings)["samples"] == 5
    assert recalibrated(session, settings, 3) == pytest.approx([0.5, 0.47, 0.47])
    # The samples are not flags: the precision of past flags leaves them out.
    precision = flag_precision(session)
    assert (precision["samples"], precision["samples_confirmed"]) == (5, 4)
    assert precision["decided"] == 10 and precision["precision"] == 0.5


def test_samples_moderators_find_fine_keep_the_threshold_where_it_is(session, settings):
    """One confirmed sample among many dismissed ones stands for more false alarms than it
    would catch: the threshold stays."""
    m = Moderation(session)
    m.decided("confirm", [0.6, 0.7, 0.8, 0.9, 0.95], 0.5)
    m.decided("dismiss", [0.5, 0.52, 0.54, 0.56, 0.58], 0.5)
    assert recalibrated(session, settings, 2) == pytest.approx([0.55, 0.6])
    m.decided("confirm", [0.46], 0.6, sampled=True)
    m.decided("dismiss", [0.47, 0.49, 0.52, 0.54, 0.55, 0.58], 0.6, sampled=True)
    result = recalibrate(session, settings)
    assert not result["changed"] and result["threshold"] == pytest.approx(0.6)


def test_recalibration_waits_for_enough_decisions_of_each_kind(session, settings):
    m = Moderation(session)
    m.decided("confirm", [0.4] * (CALIBRATION_MIN - 1), 0.5, sampled=True)
    m.decided("dismiss", [0.7] * CALIBRATION_MIN, 0.5)
    result = recalibrate(session, settings)
    assert not result["changed"] and "needs" in result["why"] and calibration(settings) == {}


def review_flags(m: Moderation, session, settings) -> None:
    """Five confirmed flags (0.7 to 0.9) and five dismissed (0.51 to 0.62): the threshold
    settles at 0.7."""
    m.decided("confirm", [0.7, 0.75, 0.8, 0.85, 0.9], 0.5)
    m.decided("dismiss", [0.51, 0.55, 0.58, 0.6, 0.62], 0.5)
    assert recalibrated(session, settings, 5) == pytest.approx([0.55, 0.6, 0.65, 0.7, 0.7])


def test_one_or_two_confirmed_samples_cannot_move_the_threshold(session, settings):
    m = Moderation(session)
    review_flags(m, session, settings)
    m.decided("confirm", [0.36], 0.7, sampled=True)
    result = recalibrate(session, settings)
    assert not result["changed"] and result["threshold"] == pytest.approx(0.7)
    m.decided("confirm", [0.31], 0.7, sampled=True)
    result = recalibrate(session, settings)
    assert not result["changed"] and result["threshold"] == pytest.approx(0.7)


def test_a_sample_does_not_make_up_for_a_missing_flag_decision(session, settings):
    """Four confirmed flags and one confirmed sample are not five confirmed decisions."""
    m = Moderation(session)
    m.decided("confirm", [0.7, 0.75, 0.8, 0.85], 0.5)
    m.decided("confirm", [0.45], 0.5, sampled=True)
    m.decided("dismiss", [0.51, 0.55, 0.58, 0.6, 0.62], 0.5)
    result = recalibrate(session, settings)
    assert not result["changed"] and "needs" in result["why"] and calibration(settings) == {}


def test_one_recalibration_moves_the_threshold_at_most_max_step(session, settings):
    m = Moderation(session)
    review_flags(m, session, settings)
    # Five confirmed samples far below: the decisions point at 0.36, one step goes 0.05.
    m.decided("confirm", [0.36, 0.31, 0.4, 0.45, 0.5], 0.7, sampled=True)
    result = recalibrate(session, settings)
    assert MAX_STEP == 0.05
    assert result["changed"] and result["threshold"] == pytest.approx(0.7 - MAX_STEP)
    assert result["target"] < 0.5 and threshold(settings) == pytest.approx(0.65)


def test_the_threshold_goes_down_step_by_step_while_moderators_confirm_samples_below_it(session, settings):
    m = Moderation(session)
    review_flags(m, session, settings)
    limit = threshold(settings)
    # Moderators confirm five samples within the band below; then, after each recalibration,
    # one more just below the new threshold.
    m.decided("confirm", [0.6, 0.62, 0.64, 0.66, 0.68], limit, sampled=True)
    steps = [limit]
    for _ in range(4):
        steps.append(recalibrate(session, settings)["threshold"])
        m.decided("confirm", [round(steps[-1] - 0.04, 4)], steps[-1], sampled=True)
    assert all(0 < a - b <= MAX_STEP + 1e-9 for a, b in zip(steps, steps[1:])), steps
    assert steps == pytest.approx([0.7, 0.65, 0.6, 0.56, 0.52])
