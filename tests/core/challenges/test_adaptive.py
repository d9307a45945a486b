"""Adaptive difficulty: the bandit learns which level suits which context, its state survives
a round trip, the simulation is reproducible and honest about regret, the adaptive policy
beats the seed's fixed rule on a seed and a world it was not tuned on, and on the platform
the policy chooses, keeps its context, spares athletes at risk and learns once from each
week whose following week is over."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from core.accounts.users import user_by_name
from core.challenges import adaptive
from core.challenges.assign import assign_due, challenges_of
from core.challenges.bandit import FEATURES, LEVELS, LinearThompson
from core.challenges.simulate import DEFAULT_WORLD, load_world, run
from core.challenges.tables import Challenge, ChallengePolicy, EngagementRisk
from tests.core.challenges.conftest import add, athlete, run_job

MONDAY = datetime(2026, 11, 2, tzinfo=UTC)  # ISO week 2026-W45, in the past (activities ahead of the clock count not)
WORLDS = Path(__file__).resolve().parents[3] / "docs" / "worlds"


def test_the_bandit_learns_the_level_that_suits_each_context():
    rng = np.random.default_rng(5)
    bandit = LinearThompson()
    dim = len(FEATURES)

    def reward(X, levels):  # low "usual" athletes do best at -1, high ones at +2
        best = np.where(X[:, 1] < 0.5, -1, 2)
        return (levels == best).astype(float) * 0.8 + rng.normal(0, 0.1, len(levels))

    for _ in range(60):
        X = rng.random((50, dim))
        X[:, 0] = 1.0
        levels = bandit.choose(X, rng)
        bandit.update(X, levels, reward(X, levels))
    X = rng.random((400, dim))
    X[:, 0] = 1.0
    chosen = bandit.choose(X, rng)
    right = np.where(X[:, 1] < 0.5, chosen == -1, chosen == 2)
    assert right.mean() > 0.85
    assert set(np.unique(chosen)) <= set(LEVELS)


def test_the_bandit_state_survives_a_round_trip_and_a_bad_one_is_refused():
    rng = np.random.default_rng(1)
    bandit = LinearThompson()
    X = rng.random((30, len(FEATURES)))
    bandit.update(X, rng.choice(LEVELS, 30), rng.random(30))
    again = LinearThompson.from_state(json.loads(json.dumps(bandit.state())))
    assert np.allclose(again.expected(X), bandit.expected(X)) and again.n.tolist() == bandit.n.tolist()
    state = bandit.state()
    singular = np.zeros_like(bandit.A).tolist()
    for broken in ({**state, "version": 99}, {**state, "A": [[1.0]]}, {**state, "b": [[float("nan")] * 9] * 5},
                   {**state, "A": singular}, {**state, "noise": float("nan")}, {**state, "prior": -1},
                   {**state, "levels": "abc"}, {**state, "n": [-1] * 5}, {**state, "dim": 1e400},
                   {**state, "levels": [1e400] * 5}, "nonsense", None):
        with pytest.raises(ValueError):
            LinearThompson.from_state(broken)


def test_a_world_file_is_checked_and_the_default_round_trips():
    assert load_world(json.dumps(DEFAULT_WORLD)) == DEFAULT_WORLD
    assert load_world('{"habit_mean": 4}')["habit_mean"] == 4.0
    for text, reason in (("[1]", "JSON object"), ("{", "not JSON"), ('{"speed": 1}', "unknown"),
                         ("[" * 100_000, "nested too deeply|not JSON"), ('{"name": "a\\u0000b"}', "printable"),
                         ('{"name": 5}', "printable"),
                         ('{"habit_mean": 99}', "from 1.0 to 7.0"), ('{"drift": true}', "number"),
                         ('{"drift": NaN}', "number"), ('{"drift": "0.1"}', "number")):
        with pytest.raises(ValueError, match=reason):
            load_world(text)


def test_the_simulation_is_reproducible_and_regret_is_counted_against_the_best_fixed_level():
    one = run(DEFAULT_WORLD, ("adaptive", "fixed", "none"), weeks=6, athletes=300, seed=3)
    two = run(DEFAULT_WORLD, ("adaptive", "fixed", "none"), weeks=6, athletes=300, seed=3)
    assert one == two
    other = run(DEFAULT_WORLD, ("adaptive",), weeks=6, athletes=300, seed=4)[0]
    assert other["weekly_active_share"] != one[0]["weekly_active_share"]
    for r in one:
        assert len(r["weekly_active_share"]) == len(r["cumulative_regret"]) == 6
        assert all(0.0 <= v <= 1.0 for v in r["weekly_active_share"])
    fixed = next(r for r in one if r["policy"] == "fixed")
    assert fixed["cumulative_regret"][-1] >= 0.0  # a fixed level is never better than each athlete's best one
    assert next(r for r in one if r["policy"] == "none")["completion_rate"] == 0.0


@pytest.mark.parametrize("world", [None, "wide_ability.json", "fragile_motivation.json"])
def test_the_adaptive_policy_beats_the_fixed_rule_and_its_regret_per_week_falls(world):
    # Seed 11 was never used while the policy was built; the two world files were written
    # before the policy was first run on them.
    w = load_world(None if world is None else (WORLDS / world).read_text())
    got = {r["policy"]: r for r in run(w, ("adaptive", "fixed"), weeks=26, athletes=2000, seed=11)}
    adaptive_share, fixed_share = got["adaptive"]["mean_active_share"], got["fixed"]["mean_active_share"]
    assert adaptive_share >= 1.05 * fixed_share, (adaptive_share, fixed_share)
    quarters = got["adaptive"]["regret_growth"]["per_week_by_quarter"]
    assert quarters[-1] < 0.5 * quarters[0]  # it learns: the per-week regret of the first weeks' exploration falls
    assert got["adaptive"]["cumulative_regret"][-1] < 0.5 * got["fixed"]["cumulative_regret"][-1]


def test_the_command_line_simulates_and_prints_the_world(tmp_path, capsys):
    from core.cli import main as cli

    assert cli.main(["challenges", "simulate", "--print-world"]) == 0
    world = json.loads(capsys.readouterr().out)
    assert world == DEFAULT_WORLD
    path = tmp_path / "w.json"
    path.write_text(json.dumps({**world, "name": "mine", "drift": 0.1}))
    assert cli.main(["challenges", "simulate", "--policy", "random", "--weeks", "4", "--athletes", "50",
                     "--seed", "2", "--world", str(path)]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["policy"] == "random" and line["world"] == "mine"
    assert {"completion_rate", "weekly_active_share", "cumulative_regret"} <= set(line)
    path.write_text('{"drift": 5}')
    assert cli.main(["challenges", "simulate", "--world", str(path)]) == 2
    assert "drift must be a number from 0.0 to 1.0" in capsys.readouterr().err
    path.write_text('{"habit_mean": 1' + "0" * 400 + "}")  # no float holds it
    assert cli.main(["challenges", "simulate", "--world", str(path)]) == 2
    assert "habit_mean must be a number from 1.0 to 7.0, not 1000000000000000000000000000000000000000..." \
        in capsys.readouterr().err
    assert cli.main(["challenges", "simulate", "--world", str(tmp_path / "missing.json")]) == 2
    assert "cannot read world file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["challenges", "simulate", "--athletes", "0"])


def three_a_week(Sessions, name, weeks=4):
    for w in range(1, weeks + 1):
        for k in range(3):
            add(Sessions, name, 6.0, when=MONDAY - timedelta(weeks=w) + timedelta(days=2 * k, hours=8))


def test_the_platform_chooses_with_the_bandit_spares_athletes_at_risk_and_learns_once(Sessions):
    keen, wary = athlete(Sessions), athlete(Sessions)
    three_a_week(Sessions, keen)
    three_a_week(Sessions, wary)
    with Sessions() as s, s.begin():
        keen_id, wary_id = user_by_name(s, keen).id, user_by_name(s, wary).id
        s.add(EngagementRisk(user_id=wary_id, risk=0.9, scored_at=MONDAY - timedelta(hours=2)))
    # A policy that has learnt +3 is best for everyone: the keen athlete gets +3, the wary one at most 0.
    bandit = LinearThompson()
    X = np.zeros((200, len(FEATURES)))
    X[:, 0] = 1.0
    for level in LEVELS:
        bandit.update(X, np.full(200, level), np.full(200, 1.0 if level == 3 else 0.0))
    with adaptive.write_transaction(Sessions, "challenges") as s:
        s.add(ChallengePolicy(name="adaptive", state=json.dumps(bandit.state()), outcomes=1000,
                              updated_at=MONDAY))
    now = MONDAY + timedelta(hours=1)
    assign_due(Sessions, now=now, policy="adaptive", rng=np.random.default_rng(0))
    with Sessions() as s:
        mine = {c.kind: c for c in challenges_of(s, keen_id, now=now)}
        theirs = challenges_of(s, wary_id, now=now)
    assert mine["sessions"].policy == "adaptive" and mine["sessions"].level == 3
    assert mine["sessions"].target == 6.0  # three a week, three more
    ctx = json.loads(mine["sessions"].context)
    assert len(ctx) == len(FEATURES) and ctx[0] == 1.0
    assert mine["distance"].context is None
    assert [c.kind for c in theirs] == ["sessions"] and theirs[0].level <= 0  # one gentler goal
    # The keen athlete does all six and is active the week after; the wary one stops.
    for k in range(6):
        add(Sessions, keen, 5.0, when=MONDAY + timedelta(days=k, hours=7))
    add(Sessions, keen, 5.0, when=MONDAY + timedelta(days=8, hours=7))
    run_job(Sessions, now=MONDAY + timedelta(days=6))
    assert adaptive.learn(Sessions, now=MONDAY + timedelta(days=13)) == {}  # the week after is not over
    done = adaptive.learn(Sessions, now=MONDAY + timedelta(days=14, hours=1))
    assert done["learned"] == 2 and done["rewards"] == 1.0  # completed and active, then neither
    assert adaptive.learn(Sessions, now=MONDAY + timedelta(days=14, hours=2)) == {}  # each week once
    with Sessions() as s:
        row = s.get(ChallengePolicy, "adaptive")
        learnt = adaptive.load(s)
        assert row.outcomes == 1002 and learnt.n.sum() == bandit.n.sum() + 2
        assert s.scalar(select(Challenge.learned_at).where(Challenge.user_id == keen_id,
                                                           Challenge.kind == "sessions")) is not None


def test_odd_time_zones_in_settings_fall_back_to_utc(Sessions):
    from core.challenges.badges import time_zone

    for settings in ({"time_zone": 5}, {"time_zone": ["Europe/London"]}, {"time_zone": "x" * 5000}, ["a"], None,
                     {"time_zone": "../../etc/passwd"}):
        assert str(time_zone(settings)) == "UTC"
    name = athlete(Sessions)
    three_a_week(Sessions, name)
    with Sessions() as s, s.begin():
        user = user_by_name(s, name)
        user.settings = {"time_zone": 5}
    assert assign_due(Sessions, now=MONDAY + timedelta(hours=1)).get("failed") is None
    with Sessions() as s:
        assert {c.week for c in challenges_of(s, user_by_name(s, name).id, now=MONDAY)} == {"2026-W45"}


def test_a_saved_state_of_other_levels_is_not_used(Sessions):
    other = LinearThompson(levels=(100, 200, 300, 400, 500))
    with adaptive.write_transaction(Sessions, "challenges") as s:
        row = s.get(ChallengePolicy, "adaptive")
        if row is None:
            s.add(ChallengePolicy(name="adaptive", state=json.dumps(other.state()), outcomes=0, updated_at=MONDAY))
        else:
            row.state = json.dumps(other.state())
    with Sessions() as s:
        policy, unread = adaptive.saved(s)
    assert unread and policy.levels == LEVELS


def test_an_unreadable_saved_state_starts_afresh(Sessions, caplog):
    with adaptive.write_transaction(Sessions, "challenges") as s:
        row = s.get(ChallengePolicy, "adaptive")
        if row is None:
            s.add(ChallengePolicy(name="adaptive", state="{not json", outcomes=0, updated_at=MONDAY))
        else:
            row.state = "{not json"
    with Sessions() as s:
        assert adaptive.load(s).n.sum() == 0
    assert "unreadable" in caplog.text
