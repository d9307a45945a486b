"""The drop-off model: who is scored and what the label counts, features that never read
past the cutoff, the generated habits, a forward-in-time evaluation that must beat the
baseline on a population it was never tuned on, the saved model, and the database path on
SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import insert

from core.accounts.users import create_user, user_by_name
from core.activities.tables import Activity
from core.anomaly.model import ModelFileError
from core.challenges.churn import (
    AT_RISK_DAYS,
    BASELINE,
    FEATURES,
    LABEL_DAYS,
    at_risk,
    dropped,
    examples,
    feature_matrix,
    fit_model,
    validation_split,
)
from core.challenges.churn_evaluation import cutoffs_of, run, time_split, top_decile_precision
from core.challenges.churn_history import Daily, read_daily
from core.challenges.churn_store import load_model, risks, save_model, train_on_database
from core.challenges.habits import OTHER_HABITS, generate
from core.challenges.tables import EngagementDay
from core.config import load_settings
from core.social.tables import Comment, Kudos
from tests.core.challenges.conftest import athlete

NOW = datetime(2026, 12, 7, 6, 30, tzinfo=UTC)
POPULATION_START = date(2025, 1, 6)


def daily_of(activities: np.ndarray, visits: np.ndarray | None = None) -> Daily:
    n, days = activities.shape
    zeros = np.zeros((n, days), dtype=np.int16)
    return Daily(activities, zeros if visits is None else visits, zeros, zeros, zeros, zeros, zeros,
                 np.full(n, np.nan))


@pytest.fixture(scope="module")
def small_model():
    pop = generate(800, 30, seed=11)
    return fit_model(examples(Daily.of(pop), cutoffs_of(pop.shape[1])))


@pytest.fixture(scope="module")
def report():
    return run(athletes=1500, weeks=44, seed=3)


# Who is scored and the label -----------------------------------------------------------------


def test_the_label_counts_the_seven_days_from_the_cutoff_and_not_the_eighth():
    c = 60
    acts = np.zeros((4, 80), dtype=np.int16)
    acts[:, c - 3] = 1  # all active before the cutoff
    acts[0, c] = 1  # on the cutoff day itself: not quiet
    acts[1, c + 6] = 1  # on the last of the seven days: not quiet
    acts[2, c + 7] = 1  # the day after the seven: quiet
    assert dropped(acts, c).tolist() == [0, 0, 1, 1]


def test_a_label_needs_all_seven_days_after_the_cutoff():
    with pytest.raises(ValueError):
        dropped(np.zeros((1, 66), dtype=np.int16), 60)


def test_athletes_gone_for_over_eight_weeks_are_not_scored():
    c = 100
    acts = np.zeros((3, 120), dtype=np.int16)
    acts[0, c - AT_RISK_DAYS] = 1  # the first day of the eight weeks: at risk
    acts[1, c - AT_RISK_DAYS - 1] = 1  # one day earlier: already dropped off
    acts[2, c] = 1  # only on the cutoff day: not yet in the history
    assert at_risk(acts, c).tolist() == [True, False, False]
    ex = examples(daily_of(acts), [c])
    assert ex.athlete.tolist() == [0]
    assert ex.X[0, BASELINE] == AT_RISK_DAYS


def test_an_athlete_back_after_a_long_break_is_scored_again_from_the_first_activity_back():
    acts = np.zeros((1, 200), dtype=np.int16)
    acts[0, 10] = 1
    acts[0, 150] = 1  # back after twenty weeks away
    assert not at_risk(acts, 150)[0]
    assert at_risk(acts, 151)[0]
    x = feature_matrix(daily_of(acts), 151)[0]
    assert x[FEATURES.index("tenure_days")] == 141
    assert x[FEATURES.index("days_since_activity")] == 1


# Features ------------------------------------------------------------------------------------


def test_features_never_read_the_days_at_or_after_the_cutoff():
    pop = generate(300, 20, seed=5)
    daily = Daily.of(pop)
    rng = np.random.default_rng(0)
    for c in (AT_RISK_DAYS, 90, 133):
        before = feature_matrix(daily, c)
        changed = Daily(*(np.concatenate([a[:, :c], rng.integers(0, 5, a[:, c:].shape)], axis=1)
                          for a in (daily.activities, daily.visits, daily.sign_ins, daily.kudos_given,
                                    daily.kudos_received, daily.comments_given, daily.comments_received)),
                        daily.first_active)
        assert np.array_equal(before, feature_matrix(changed, c))
        assert not np.array_equal(before, feature_matrix(changed, c + 1))


def test_features_of_a_regular_athlete_read_as_expected():
    acts = np.zeros((1, 70), dtype=np.int16)
    acts[0, 0:70:7] = 1  # one session a week, always the same weekday
    visits = np.ones((1, 70), dtype=np.int16)
    x = dict(zip(FEATURES, feature_matrix(daily_of(acts, visits), 63)[0], strict=True))
    assert x["days_since_activity"] == 7
    assert (x["activities_7d"], x["activities_28d"], x["activities_56d"]) == (1, 4, 8)
    assert x["weeks_active_share"] == 1.0
    assert x["weekday_concentration"] == pytest.approx(1.0)
    assert (x["longest_gap_days"], x["mean_gap_days"]) == (6, 7)
    assert (x["visits_7d"], x["visits_28d"], x["days_since_visit"]) == (7, 28, 1)
    assert x["tenure_days"] == 63


# The generated habits ------------------------------------------------------------------------


def test_the_generator_gives_the_same_population_for_a_seed():
    a, b, c = generate(200, 10, seed=1), generate(200, 10, seed=1), generate(200, 10, seed=2)
    assert np.array_equal(a.activities, b.activities) and np.array_equal(a.visits, b.visits)
    assert np.array_equal(a.kudos_received, b.kudos_received) and a.start_weekday == b.start_weekday
    assert not np.array_equal(a.activities, c.activities)


def test_the_generated_athletes_keep_routines_take_breaks_and_some_come_back():
    pop = generate(3000, 60, seed=4)
    acts, (n, days) = pop.activities > 0, pop.shape
    per_week = acts.sum(axis=1) / 60
    assert 0.5 < per_week.mean() < 4
    assert pop.activities.max() == 2  # some train twice a day

    def gaps(row):
        on = np.flatnonzero(row)
        return np.diff(on) - 1

    all_gaps = [gaps(r) for r in acts]
    short_breaks = sum(any((g >= 7) & (g <= 21)) for g in all_gaps)
    long_returns = sum(any(g >= AT_RISK_DAYS) for g in all_gaps)
    assert short_breaks > 0.3 * n  # holidays and injuries
    assert long_returns > 0.03 * n  # gone for over eight weeks, then back
    stopped_for_good = acts.any(axis=1) & ~acts[:, -AT_RISK_DAYS:].any(axis=1)
    assert stopped_for_good.sum() > 0.1 * n
    assert ((pop.back >= 0) & (pop.back > pop.stopped)).sum() > 0.02 * n
    assert (pop.joined > AT_RISK_DAYS).sum() > 0.2 * n  # new joiners along the way

    # Visits fade before training stops: the four weeks before a stop against weeks 12 to 8 before.
    fading = np.flatnonzero(pop.stopped >= 84)
    late = np.mean([pop.visits[k, pop.stopped[k] - 28:pop.stopped[k]].sum() for k in fading])
    early = np.mean([pop.visits[k, pop.stopped[k] - 84:pop.stopped[k] - 56].sum() for k in fading])
    assert late < 0.8 * early
    # Visits go with training but are not the same thing: browsers visit without training.
    r = np.corrcoef(pop.activities.ravel(), pop.visits.ravel())[0, 1]
    assert 0.1 < r < 0.9
    assert ((pop.visits.sum(axis=1) > 2 * days) & (per_week < 1.5)).sum() > 0


def test_the_other_population_has_other_habits():
    a, b = generate(1000, 30, seed=9), generate(1000, 30, seed=9, habits=OTHER_HABITS)
    assert b.activities.mean() < a.activities.mean()
    assert b.visits.mean() != a.visits.mean()


# The evaluation ------------------------------------------------------------------------------


def test_training_labels_end_before_the_first_test_cutoff():
    cutoffs = cutoffs_of(40 * 7)
    train, test = time_split(cutoffs)
    assert len(train) and len(test)
    assert train.max() + LABEL_DAYS <= test.min()
    assert not set(train) & set(test)
    fit, valid = validation_split(np.repeat(train, 3))
    assert np.repeat(train, 3)[fit].max() + LABEL_DAYS <= np.repeat(train, 3)[valid].min()


def test_the_report_keeps_its_blocks_apart(report):
    for r in report["populations"].values():
        b = r["blocks"]
        assert b["last_training_label_day"] < b["test_cutoffs"][0]
        assert b["fit_cutoffs"][1] + LABEL_DAYS <= b["validation_cutoffs"][0]
        assert b["validation_cutoffs"][1] <= b["train_cutoffs"][1]
        assert sum(row["count"] for row in r["reliability"]) == r["examples"]["test"]


def test_the_model_beats_the_baseline_on_the_population_it_was_never_tuned_on(report):
    models = report["populations"]["untuned"]["models"]
    assert models["chosen"]["roc_auc"] > models["baseline"]["roc_auc"]


def test_the_chosen_model_beats_the_base_rate_on_brier_score(report):
    for r in report["populations"].values():
        assert r["models"]["chosen"]["brier"] < r["base_rate_brier"]
        lo, hi = r["models"]["chosen"]["roc_auc_ci"]
        assert lo <= r["models"]["chosen"]["roc_auc"] <= hi
    json.dumps(report)  # the CLI prints it as one JSON line


def test_top_decile_precision_counts_ties_at_the_edge_at_their_average():
    y = np.array([1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    score = np.array([5, 5, 5, 5] + [1] * 16)  # the top two are drawn from four tied rows
    assert top_decile_precision(y, score) == pytest.approx(0.25)


# The saved model -----------------------------------------------------------------------------


def test_a_saved_model_loads_and_predicts_the_same(small_model, tmp_path, monkeypatch):
    monkeypatch.setenv("TRACKER_DATA_DIR", str(tmp_path))
    settings = load_settings()
    assert load_model(settings) is None
    path = save_model(small_model, settings)
    assert path.name == "churn.pkl"
    X = np.random.default_rng(0).uniform(0, 20, (5, len(FEATURES)))
    assert np.allclose(load_model(settings).predict(X), small_model.predict(X))


def test_a_model_file_of_another_format_or_tampered_with_is_refused(small_model, tmp_path, monkeypatch):
    monkeypatch.setenv("TRACKER_DATA_DIR", str(tmp_path))
    settings = load_settings()
    path = save_model(small_model, settings)
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(ModelFileError, match="signature"):
        load_model(settings)
    path.write_bytes(b"TRACKER-CHURN-MODEL-0\n" + data.split(b"\n", 1)[1])
    with pytest.raises(ModelFileError, match="format|version"):
        load_model(settings)


# The database --------------------------------------------------------------------------------


def _at(day: date, hour: int = 7) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def _activities(Sessions, user_id: int, days: list[date], **extra) -> list[int]:
    with Sessions() as s, s.begin():
        rows = [{"user_id": user_id, "sport": "run", "status": "completed", "title": "t", "visibility": "public",
                 "source": "demo", "start_time": _at(d), "completed_at": _at(d), "distance_m": 5000.0,
                 "held": False, **extra} for d in days]
        return list(s.scalars(insert(Activity).returning(Activity.id), rows))


def _visits(Sessions, user_id: int, days: dict[date, int]) -> None:
    with Sessions() as s, s.begin():
        s.execute(insert(EngagementDay), [{"user_id": user_id, "day": d, "visits": v, "sign_ins": min(v, 1)}
                                          for d, v in days.items()])


def test_the_database_days_count_what_counts(Sessions):
    x, y = athlete(Sessions), athlete(Sessions)
    with Sessions() as s:
        xid, yid = user_by_name(s, x).id, user_by_name(s, y).id
    d = date(2026, 10, 5)
    (mine,) = _activities(Sessions, yid, [d])
    _activities(Sessions, yid, [d + timedelta(days=1)], held=True)  # held for review: does not count
    _activities(Sessions, yid, [d + timedelta(days=2)], status="active")  # not completed
    _activities(Sessions, yid, [d + timedelta(days=3)])  # on the end day: not read
    _visits(Sessions, yid, {d: 3, d + timedelta(days=2): 1})
    with Sessions() as s, s.begin():
        s.add_all([Kudos(activity_id=mine, user_id=xid, owner_id=yid, created_at=_at(d, 12)),
                   Kudos(activity_id=mine, user_id=yid, owner_id=yid, created_at=_at(d, 12)),  # one's own: not counted
                   Comment(activity_id=mine, user_id=xid, owner_id=yid, text="well done", created_at=_at(d + timedelta(days=1))),
                   Comment(activity_id=mine, user_id=yid, owner_id=yid, text="thanks", created_at=_at(d + timedelta(days=1)))])
    daily = read_daily(Sessions, [xid, yid], d - timedelta(days=1), d + timedelta(days=3))
    assert daily.activities.tolist() == [[0, 0, 0, 0], [0, 1, 0, 0]]
    assert daily.visits[1].tolist() == [0, 3, 0, 1] and daily.sign_ins[1].tolist() == [0, 1, 0, 1]
    assert daily.kudos_given[0].tolist() == [0, 1, 0, 0] and daily.kudos_given[1].sum() == 0
    assert daily.kudos_received[1].tolist() == [0, 1, 0, 0] and daily.kudos_received[0].sum() == 0
    assert daily.comments_given[0].tolist() == [0, 0, 1, 0] and daily.comments_given[1].sum() == 0
    assert daily.comments_received[1].tolist() == [0, 0, 1, 0]
    assert daily.first_active[1] == 1 and np.isnan(daily.first_active[0])


def test_an_athlete_who_stopped_recently_is_at_higher_risk_than_a_daily_one(Sessions, small_model):
    daily_one, stopped, gone = athlete(Sessions), athlete(Sessions), athlete(Sessions)
    with Sessions() as s:
        ids = [user_by_name(s, name).id for name in (daily_one, stopped, gone)]
    today = NOW.date()
    _activities(Sessions, ids[0], [today - timedelta(days=k) for k in range(1, 57)])
    _visits(Sessions, ids[0], {today - timedelta(days=k): 2 for k in range(1, 57)})
    _activities(Sessions, ids[1], [today - timedelta(days=k) for k in range(12, 57)])
    _visits(Sessions, ids[1], {today - timedelta(days=k): 2 for k in range(20, 57)})
    _activities(Sessions, ids[2], [today - timedelta(days=k) for k in range(60, 90)])
    _activities(Sessions, ids[0], [today])  # today's: not a complete day yet, not read
    found = risks(Sessions, ids, NOW, small_model)
    assert set(found) == set(ids[:2])  # gone for over eight weeks: not scored
    assert all(0.0 <= p <= 1.0 for p in found.values())
    assert found[ids[1]] > found[ids[0]]


def test_training_on_a_database_with_too_little_history_gives_nothing(Sessions):
    assert train_on_database(Sessions, NOW + timedelta(days=1), weeks=4) is None


def test_training_on_the_database_learns_from_its_own_history(Sessions):
    pop = generate(150, 24, seed=21)
    with Sessions() as s, s.begin():
        ids = [create_user(s, f"habit{k:03d}").id for k in range(pop.shape[0])]
    act_rows, visit_rows = [], []
    for k, uid in enumerate(ids):
        for day in np.flatnonzero(pop.activities[k]):
            d = POPULATION_START + timedelta(days=int(day))
            act_rows += [{"user_id": uid, "sport": "run", "status": "completed", "title": "t",
                          "visibility": "public", "source": "demo", "start_time": _at(d, 6 + j),
                          "completed_at": _at(d, 6 + j), "held": False} for j in range(pop.activities[k, day])]
        for day in np.flatnonzero(pop.visits[k]):
            visit_rows.append({"user_id": uid, "day": POPULATION_START + timedelta(days=int(day)),
                               "visits": int(pop.visits[k, day]), "sign_ins": int(pop.sign_ins[k, day])})
    with Sessions() as s, s.begin():
        s.execute(insert(Activity), act_rows)
        s.execute(insert(EngagementDay), visit_rows)
    end = POPULATION_START + timedelta(days=pop.shape[1])
    model = train_on_database(Sessions, _at(end, 0), weeks=pop.shape[1] // 7)
    assert model is not None
    assert model.meta["training"]["rows"] >= 200 and model.meta["training"]["dropped"] >= 20
    assert model.meta["model"] in ("logistic", "boosting")
    scored = risks(Sessions, ids, _at(end, 0), model)
    assert scored and all(0.0 <= p <= 1.0 for p in scored.values())
