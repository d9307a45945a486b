"""The weekly drop-off scoring job: trained on the database's own history, it scores the
athletes active in the last eight weeks, is not due again for a week, and the challenge
assignment that follows gives an athlete at risk one gentler challenge."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, insert, select

from core.accounts.tables import User
from core.activities.tables import Activity
from core.anomaly.tables import ActivityFlag
from core.challenges import adaptive
from core.challenges.assign import assign_due, challenges_of
from core.challenges.churn_store import load_model
from core.challenges.tables import EngagementRisk
from core.config import load_settings
from core.jobs.engagement import engagement_due, score_engagement

NOW = datetime(2026, 11, 2, 6, tzinfo=UTC)  # a Monday, in the past (activities ahead of the clock count not)


def population(Sessions) -> dict[str, list[int]]:
    """Sixty athletes over twenty weeks: steady ones, fading ones (a run every two days,
    then one a week, then none for the last two to four weeks), and on-and-off ones."""
    groups: dict[str, list[int]] = {"steady": [], "faded": [], "patchy": []}
    tag = uuid.uuid4().hex[:6]
    with Sessions() as s, s.begin():
        for kind, n in (("steady", 20), ("faded", 20), ("patchy", 20)):
            for k in range(n):
                uid = s.execute(insert(User).values(username=f"{kind}{k}{tag}", name="A", role="athlete",
                                                    default_visibility="public", settings={}).returning(User.id)).scalar()
                groups[kind].append(uid)
        rows = []
        for kind, ids in groups.items():
            for i, uid in enumerate(ids):
                for day in range(140, 0, -1):
                    when = NOW - timedelta(days=day, hours=-7)
                    if kind == "steady":
                        on = day % 2 == i % 2
                    elif kind == "faded":
                        on = (day > 60 and day % 2 == 0) or (14 + i % 3 * 7 < day <= 60 and day % 7 == i % 7)
                    else:
                        on = (day // 14 + i) % 2 == 0 and day % 3 == 0
                    if on:
                        rows.append(dict(user_id=uid, sport="run", status="completed", title="t",
                                         visibility="public", source="demo", start_time=when, completed_at=when,
                                         distance_m=5000.0, moving_time_s=1800.0, elevation_gain_m=0.0,
                                         point_count=360, held=False))
        s.execute(insert(Activity), rows)
        ids = [uid for kind in groups.values() for uid in kind]
        s.execute(insert(ActivityFlag), [  # scored clear, as the worker leaves them
            dict(activity_id=aid, user_id=uid, sport="run", score=0.1, status="clear", reasons=[], codes="",
                 verdict={}, features={})
            for aid, uid in s.execute(select(Activity.id, Activity.user_id).where(Activity.user_id.in_(ids)))])
    return groups


def test_the_job_trains_on_the_database_scores_and_the_assignment_spares_those_at_risk(Sessions, tmp_path,
                                                                                       monkeypatch):
    monkeypatch.setenv("TRACKER_DATA_DIR", str(tmp_path))
    settings = load_settings()
    groups = population(Sessions)
    assert engagement_due(settings, NOW)
    done = score_engagement(Sessions, settings, now=NOW)["engagement"]
    assert done.get("trained") is True, done
    assert done["validation_roc_auc"] > done["baseline_roc_auc"]  # saved only when it beats days-since
    with Sessions() as s:
        risk = dict(s.execute(select(EngagementRisk.user_id, EngagementRisk.risk)).all())
    steady = [risk[u] for u in groups["steady"]]
    faded = [risk[u] for u in groups["faded"] if u in risk]
    assert all(0.0 <= p <= 1.0 for p in risk.values())
    assert faded and min(faded) > max(steady)  # quiet for weeks against a run every other day
    assert not engagement_due(settings, NOW + timedelta(days=6))
    assert engagement_due(settings, NOW + timedelta(days=7))
    # The saved model is used when the database cannot train one.
    assert (tmp_path / "models" / "churn.pkl").exists()

    # The assignment scores each athlete again as their week begins, with the saved model.
    with adaptive.write_transaction(Sessions, "engagement") as s:
        s.execute(delete(EngagementRisk))
    assign_due(Sessions, now=NOW + timedelta(hours=1), limit=1000, risk_model=load_model(settings))
    with Sessions() as s:
        again = dict(s.execute(select(EngagementRisk.user_id, EngagementRisk.risk)).all())
        assert again == risk  # today's risk, the same data: the same figures
    with Sessions() as s:
        for uid in groups["steady"][:3]:
            kinds = {c.kind for c in challenges_of(s, uid, now=NOW)}
            assert kinds == {"sessions", "distance"} and risk[uid] < 0.5
        risky = [u for u in risk if risk[u] >= 0.5 and u in groups["faded"]]
        assert risky
        for uid in risky:
            mine = challenges_of(s, uid, now=NOW)
            assert [c.kind for c in mine] == ["sessions"] and mine[0].level <= -1


def test_a_model_no_better_than_days_since_the_last_activity_is_not_worth_saving():
    from core.challenges.churn import ChurnModel, beats_baseline

    def model(auc, baseline):
        return ChurnModel(None, {"model": "boosting", "validation": {"roc_auc": {"boosting": auc},
                                                                      "baseline_roc_auc": baseline}})

    assert beats_baseline(model(0.80, 0.75))
    assert not beats_baseline(model(0.75, 0.75)) and not beats_baseline(model(0.70, 0.75))
    assert not beats_baseline(ChurnModel(None, {}))


def test_a_drop_off_model_file_that_cannot_be_unpickled_is_none(tmp_path, monkeypatch, caplog):
    import sys
    import types

    from core.challenges.churn import ChurnModel
    from core.challenges.churn_store import current_model, save_model

    monkeypatch.setenv("TRACKER_DATA_DIR", str(tmp_path))
    settings = load_settings()
    gone = types.ModuleType("gone_estimators")

    class Estimator:
        pass

    Estimator.__module__, Estimator.__qualname__ = "gone_estimators", "Estimator"
    gone.Estimator = Estimator
    sys.modules["gone_estimators"] = gone
    from core.challenges.churn import library_versions

    save_model(ChurnModel(Estimator(), {"versions": library_versions()}), settings)
    del sys.modules["gone_estimators"]
    assert current_model(settings) is None
    assert "refused" in caplog.text
