"""A simulated population with hidden ground truth, to compare challenge policies.

``python -m core challenges simulate`` runs a population for a number of weeks under one
policy (or all of them, on the same draws) and prints what it did. Each simulated athlete
has hidden traits the policies never see: a habit (sessions a week when fully motivated),
an ability (the sessions a week they can manage when they push, as a ratio of the habit),
and a motivation between 0 and 1 that decays without activity, grows with success (more
for a challenge that stretched them than for a trivial one), and falls after a failure or
when a challenge looks out of reach. What the policies see is what the platform sees: the
sessions done each week, the challenges offered, taken up and completed.

A week, for each athlete (numbers from the world, ``DEFAULT_WORLD``):
1. The policy picks a level (steps above the usual week: the usual week being the mean of
   the last eight weeks' sessions, as ``core.challenges.personal`` computes it); the target
   is ``max(1, round(usual) + level)`` sessions. ``none`` offers nothing.
2. Without a challenge taken up, the athlete trains on each day with probability
   ``habit * (floor + motivation) / 7``.
3. They take the challenge up with probability ``sigmoid(uptake.bias + uptake.motivation *
   (motivation - 0.5) - uptake.too_hard * max(0, target - capacity))``, capacity being
   ``ability * habit * (capacity_floor + (1 - capacity_floor) * motivation)``; taken up, they
   reach the target with probability ``sigmoid((capacity - target + 0.5) / completion_spread)``,
   else do part of it. A challenge is completed when the week's sessions reach the target,
   taken up or not (as the platform counts it).
4. Motivation then moves: ``+ success_gain * (easy_share + (1 - easy_share) * stretch)`` on
   completion (stretch: how far the target is above their habit, up to ``stretch_full``
   times it), ``- failure_loss`` after a failure, ``- discouraged`` when a challenge out of
   reach is not taken up, ``- bored`` when it asks less than their habit, ``+ active_gain`` or ``- inactive_decay`` for the week, and
   ``drift`` of the way back to the athlete's own baseline. Ability grows by ``training``
   after a completed stretch and falls by ``detraining`` in an inactive week.

The reward of a week's level (what the adaptive policy learns from, and what regret is
counted in) is half completion and half activity in the following week. Regret is against
the best fixed level for each athlete in hindsight: every fixed level is run on the same
random draws, and each athlete's best one is kept.

Every run is reproducible: the world's draws come from ``seed`` and each policy's own choices
from a generator derived from it, so all policies meet the same athletes and the same luck.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass

import numpy as np

from core.challenges.bandit import LEVELS, LinearThompson, context, reward

POLICIES = ("adaptive", "fixed", "random", "none")
MAX_WEEKS, MAX_ATHLETES = 104, 100_000  # the draws take about 40 bytes per athlete and week
WARMUP_WEEKS = 8
FIXED_LEVEL = 1  # the seed's rule: one session more than the usual week

# Each parameter: (default, low, high, what it is). The world file holds the same keys.
PARAMETERS: dict[str, tuple[float, float, float, str]] = {
    "habit_mean": (2.5, 1.0, 7.0, "mean habitual sessions a week of a fully motivated athlete"),
    "habit_sd": (1.3, 0.0, 3.0, "spread of the habit across athletes (normal, clipped to 1..7)"),
    "ability_log_mean": (0.25, -1.0, 1.0, "mean of log(ability / habit): what they manage when pushing"),
    "ability_log_sd": (0.35, 0.0, 1.5, "spread of log(ability / habit) across athletes"),
    "motivation_alpha": (3.0, 0.5, 20.0, "Beta(alpha, beta) of the starting (and baseline) motivation"),
    "motivation_beta": (3.0, 0.5, 20.0, "Beta(alpha, beta) of the starting (and baseline) motivation"),
    "floor": (0.15, 0.0, 1.0, "share of the habit an athlete keeps at zero motivation"),
    "capacity_floor": (0.6, 0.0, 1.0, "share of their capacity an athlete can push to at zero motivation"),
    "uptake_bias": (1.0, -5.0, 5.0, "log-odds of taking a challenge up at motivation 0.5 and within reach"),
    "uptake_motivation": (3.0, 0.0, 10.0, "how much motivation raises those log-odds"),
    "uptake_too_hard": (1.5, 0.0, 10.0, "log-odds lost per session the target is above their capacity"),
    "completion_spread": (0.6, 0.05, 5.0, "sessions over which completion goes from likely to unlikely"),
    "success_gain": (0.10, 0.0, 0.5, "motivation gained by completing a challenge that stretched them"),
    "easy_share": (0.25, 0.0, 1.0, "share of that gain left for a challenge at or below their habit"),
    "stretch_full": (0.5, 0.05, 2.0, "stretch (target over habit, minus one) that earns the full gain"),
    "failure_loss": (0.10, 0.0, 0.5, "motivation lost after taking up a challenge and failing it"),
    "discouraged": (0.04, 0.0, 0.5, "motivation lost when a challenge out of reach is not taken up"),
    "bored": (0.03, 0.0, 0.5, "motivation lost when a challenge asks less than the athlete's habit"),
    "active_gain": (0.02, 0.0, 0.3, "motivation gained in a week with an activity"),
    "inactive_decay": (0.10, 0.0, 0.5, "motivation lost in a week without one"),
    "drift": (0.05, 0.0, 1.0, "share of the way back to the athlete's baseline motivation each week"),
    "training": (0.02, 0.0, 0.2, "ability gained by completing a stretch"),
    "detraining": (0.02, 0.0, 0.2, "ability lost in an inactive week"),
}
DEFAULT_WORLD = {"name": "default", **{k: v[0] for k, v in PARAMETERS.items()}}


def load_world(text: str | None) -> dict:
    """The world a JSON text describes, over the defaults; ValueError naming what is wrong."""
    world = copy.deepcopy(DEFAULT_WORLD)
    if text is None:
        return world
    try:
        given = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"world file is not JSON: {exc}") from None
    except RecursionError:
        raise ValueError("world file is nested too deeply") from None
    if not isinstance(given, dict):
        raise ValueError("world file must hold a JSON object")
    for key, value in given.items():
        if key == "name":
            if not isinstance(value, str) or not value.isprintable() or not 0 < len(value) <= 80:
                raise ValueError("world name must be printable text of 1 to 80 characters")
            world["name"] = value
            continue
        if key not in PARAMETERS:
            raise ValueError(f"unknown world parameter {key!r} (known: {', '.join(PARAMETERS)})")
        low, high = PARAMETERS[key][1:3]
        # The range first: a 400-digit whole number has no float to check for finiteness.
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high \
                or not math.isfinite(value):
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + "..."
            raise ValueError(f"world parameter {key} must be a number from {low} to {high}, not {shown}")
        world[key] = float(value)
    return world


@dataclass
class Draws:
    """The world's randomness, drawn once per run and shared by every policy."""

    habit: np.ndarray
    ability: np.ndarray  # as a ratio of the habit
    motivation: np.ndarray
    days: np.ndarray  # (weeks, athletes, 7) uniforms: which days they train
    take: np.ndarray  # (weeks, athletes)
    complete: np.ndarray
    partial: np.ndarray


def draw(world: dict, athletes: int, weeks: int, seed: int) -> Draws:
    rng = np.random.default_rng(seed)
    total = WARMUP_WEEKS + weeks + 1  # one more week: the last week's reward needs the week after
    return Draws(
        habit=np.clip(rng.normal(world["habit_mean"], world["habit_sd"], athletes), 1.0, 7.0),
        ability=np.exp(rng.normal(world["ability_log_mean"], world["ability_log_sd"], athletes)),
        motivation=rng.beta(world["motivation_alpha"], world["motivation_beta"], athletes),
        days=rng.random((total, athletes, 7), dtype=np.float32), take=rng.random((total, athletes)),
        complete=rng.random((total, athletes)), partial=rng.random((total, athletes)))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass
class Run:
    """One policy's run: per week (rows) and athlete (columns)."""

    level: np.ndarray  # the level offered (meaningless where offered is False)
    offered: np.ndarray
    taken: np.ndarray
    completed: np.ndarray
    active: np.ndarray  # includes the extra week at the end

    def rewards(self) -> np.ndarray:
        """Each week's reward: half completion, half activity the week after."""
        return reward(self.completed, self.active[1:])


def simulate(world: dict, draws: Draws, weeks: int, choose) -> Run:
    """Run the population for ``weeks`` weeks after the warm-up (eight weeks without
    challenges, so every athlete has a usual week). ``choose(week, observed)`` returns each
    athlete's level (an int array; ``None`` for no challenges), seeing only ``observed``
    (``Observed``); it may keep learning from what it saw."""
    n = draws.habit.shape[0]
    habit, ability, m0 = draws.habit, draws.ability.copy(), draws.motivation
    m = m0.copy()
    total = WARMUP_WEEKS + weeks + 1
    sessions = np.zeros((total, n))
    obs = Observed(n)
    out = Run(*(np.zeros((weeks, n), dtype=t) for t in (int, bool, bool, bool)), active=np.zeros((weeks + 1, n), bool))
    for t in range(total):
        week = t - WARMUP_WEEKS
        past = sessions[max(0, t - 8):t]
        usual = past.mean(axis=0) if t else habit * (world["floor"] + m)
        level = None
        if 0 <= week < weeks:
            obs.usual = usual
            obs.active_4w = (sessions[max(0, t - 4):t] > 0).mean(axis=0) if t else np.ones(n)
            obs.last_week = sessions[t - 1] if t else usual
            obs.peak = past.max(axis=0) if t else usual
            obs.risk = 1.0 - (sessions[max(0, t - 2):t] > 0).mean(axis=0)
            level = choose(week, obs)
        p_day = np.clip(habit * (world["floor"] + m) / 7.0, 0.0, 0.95)
        done = (draws.days[t] < p_day[:, None]).sum(axis=1).astype(float)
        offered = np.zeros(n, bool) if level is None else np.ones(n, bool)
        taken = completed = np.zeros(n, bool)
        if level is not None:
            target = np.maximum(1.0, np.round(usual) + level)
            capacity = ability * habit * (world["capacity_floor"] + (1.0 - world["capacity_floor"]) * m)
            p_take = _sigmoid(world["uptake_bias"] + world["uptake_motivation"] * (m - 0.5)
                              - world["uptake_too_hard"] * np.maximum(0.0, target - capacity))
            taken = draws.take[t] < p_take
            made = taken & (draws.complete[t] < _sigmoid((capacity - target + 0.5) / world["completion_spread"]))
            done = np.where(made, np.maximum(done, target), done)
            done = np.where(taken & ~made, np.maximum(done, np.floor(draws.partial[t] * target)), done)
            completed = done >= target  # as on the platform: reached, taken up or not
            stretch = np.clip((target - habit) / np.maximum(1.0, habit) / world["stretch_full"], 0.0, 1.0)
            m = m + completed * world["success_gain"] * (world["easy_share"] + (1 - world["easy_share"]) * stretch)
            m = m - (taken & ~completed) * world["failure_loss"]
            m = m - (~taken & (target > capacity)) * world["discouraged"]
            m = m - (target < habit) * world["bored"]
            ability = ability * np.where(completed & (target > habit), 1.0 + world["training"], 1.0)
        active = done > 0
        m = m + np.where(active, world["active_gain"], -world["inactive_decay"])
        m = np.clip(m + world["drift"] * (m0 - m), 0.01, 1.0)
        ability = ability * np.where(active, 1.0, 1.0 - world["detraining"])
        sessions[t] = done
        if 0 <= week < weeks:
            out.level[week], out.offered[week], out.taken[week], out.completed[week] = \
                (level if level is not None else 0), offered, taken, completed
            obs.record(level, offered, completed)
        if week >= 0:
            out.active[week] = active
    return out


class Observed:
    """What a policy sees of each athlete: their usual week, recent activity, and how
    their past challenges went."""

    def __init__(self, n: int):
        self.usual = self.active_4w = self.last_week = self.peak = self.risk = np.zeros(n)
        self.offered, self.completed = np.zeros(n), np.zeros(n)
        self.last_completed, self.last_level = np.full(n, 0.5), np.full(n, float(FIXED_LEVEL))

    def record(self, level, offered: np.ndarray, completed: np.ndarray) -> None:
        if level is None:
            return
        self.offered = self.offered + offered
        self.completed = self.completed + completed
        self.last_completed = np.where(offered, completed.astype(float), self.last_completed)
        self.last_level = np.where(offered, level, self.last_level)

    def context(self) -> np.ndarray:
        return context(self.usual, self.active_4w, self.last_week, self.peak, self.offered, self.completed,
                       self.last_completed, self.last_level, self.risk)


def fixed(level: int | None):
    return lambda week, obs: None if level is None else np.full(obs.usual.shape[0], level)


def random_levels(rng: np.random.Generator):
    return lambda week, obs: rng.choice(LEVELS, size=obs.usual.shape[0])


class Adaptive:
    """The adaptive policy in the simulation: ``LinearThompson`` choosing each week, and
    learning each week's reward once the week after it is over (as the worker does)."""

    def __init__(self, rng: np.random.Generator, bandit: LinearThompson | None = None):
        self.rng, self.bandit = rng, bandit or LinearThompson()
        self.pending: list[list] = []  # [week, context, level, completed before, completed then]

    def __call__(self, week: int, obs: Observed) -> np.ndarray:
        for entry in self.pending:
            if entry[0] == week - 1:  # last week is over: was its challenge completed?
                entry[4] = obs.completed - entry[3]
        for entry in [e for e in self.pending if e[0] == week - 2]:  # and the week after it too
            self.bandit.update(entry[1], entry[2], reward(entry[4], obs.last_week > 0))
            self.pending.remove(entry)
        X = obs.context()
        level = self.bandit.choose(X, self.rng)
        self.pending.append([week, X, level, obs.completed.copy(), None])
        return level


def policy_of(name: str, seed: int):
    rng = np.random.default_rng([seed, POLICIES.index(name)])
    return {"adaptive": lambda: Adaptive(rng), "fixed": lambda: fixed(FIXED_LEVEL),
            "random": lambda: random_levels(rng), "none": lambda: fixed(None)}[name]()


def growth(regret: list[float]) -> dict:
    """How cumulative regret grows: the regret added per week in each quarter of the weeks.
    Sub-linear regret keeps falling towards zero from quarter to quarter; a per-week regret
    that levels off above zero is linear growth, however small. With fewer than four weeks,
    a quarter is part of a week and has that week's regret per week."""
    r = np.concatenate([[0.0], np.asarray(regret, float)])
    n = len(regret)
    if n == 0:
        return {"per_week_by_quarter": [None] * 4}
    # Quarters of whole weeks; with fewer than four weeks a quarter is part of a week, its
    # regret that week's spread evenly over it.
    edges = np.linspace(0, n, 5) if n < 4 else np.linspace(0, n, 5).round()
    at = np.interp(edges, np.arange(n + 1), r)
    per_week = [float((at[k + 1] - at[k]) / (edges[k + 1] - edges[k])) for k in range(4)]
    return {"per_week_by_quarter": [round(v, 4) for v in per_week]}


def run(world: dict, policies: tuple[str, ...], weeks: int = 26, athletes: int = 2000, seed: int = 0) -> list[dict]:
    """Each policy's figures, on the same draws: completion and uptake rates, weekly active
    share, cumulative regret (a mean per athlete, in reward units) and its growth."""
    draws = draw(world, athletes, weeks, seed)
    per_level = {lv: simulate(world, draws, weeks, fixed(lv)).rewards() for lv in LEVELS}
    totals = np.stack([per_level[lv].sum(axis=0) for lv in LEVELS])  # (levels, athletes)
    best = np.stack([per_level[lv] for lv in LEVELS])[totals.argmax(axis=0), :, np.arange(athletes)].T
    out = []
    for name in policies:
        r = simulate(world, draws, weeks, policy_of(name, seed))
        regret = np.cumsum((best - r.rewards()).mean(axis=1)).tolist()
        offered = int(r.offered.sum())
        levels = {str(lv): round(float((r.level[r.offered] == lv).mean()), 4) for lv in LEVELS} if offered else {}
        out.append({
            "policy": name, "world": world["name"], "seed": seed, "athletes": athletes, "weeks": weeks,
            "completion_rate": round(float(r.completed.sum() / offered), 4) if offered else 0.0,
            "uptake_rate": round(float(r.taken.sum() / offered), 4) if offered else 0.0,
            "weekly_active_share": [round(float(v), 4) for v in r.active[:weeks].mean(axis=1)],
            "mean_active_share": round(float(r.active[:weeks].mean()), 4),
            "cumulative_regret": [round(v, 4) for v in regret],
            "regret_growth": growth(regret),
            "levels": levels,
        })
    return out
