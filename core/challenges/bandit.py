"""Adaptive challenge difficulty: a contextual bandit over difficulty levels.

Each week an athlete's challenges are built at one level (steps above their usual week:
-1 gentler, 0 their usual week, +1 the seed's "one more session", up to +3). Which level
suits whom is learnt from outcomes: the reward of a week's level is half whether the athlete
completed a challenge that week and half whether they were active the week after, so a
trivial challenge (completed, but no pull) and a discouraging one (failed, and the athlete
drifts away) both score less than the one that stretches them just enough.

The policy is linear Thompson sampling: for each level a Bayesian linear regression of the
reward on the athlete's context (``context``), with a Gaussian prior; to choose, a reward is
drawn for each level from its posterior at the athlete's context and the best drawn level
wins, so levels the model is unsure of are tried in proportion to the chance they are best.
The state is the sufficient statistics (A = prior + X'X and b = X'r per level): a few
hundred numbers, saved as JSON after every batch of outcomes, so learning survives restarts
and goes on from every outcome. The same class drives ``core.challenges.simulate``.
"""

from __future__ import annotations

import math

import numpy as np

LEVELS = (-1, 0, 1, 2, 3)
FEATURES = ("bias", "usual", "active_4w", "last_week", "peak", "completion_rate", "last_completed",
            "last_level", "risk")
STATE_VERSION = 1
COMPLETION_WEIGHT = 0.5  # the reward: this much for completion, the rest for activity the week after


def reward(completed, active_after):
    """A week's reward: completion, and activity in the week after it."""
    return COMPLETION_WEIGHT * np.asarray(completed, float) + (1.0 - COMPLETION_WEIGHT) * np.asarray(active_after, float)


def context(usual: np.ndarray, active_4w: np.ndarray, last_week: np.ndarray, peak: np.ndarray, offered: np.ndarray,
            completed: np.ndarray, last_completed: np.ndarray, last_level: np.ndarray,
            risk: np.ndarray) -> np.ndarray:
    """The context of each athlete (one row each, columns ``FEATURES``), every column within
    [0, 1]: usual sessions a week (of 7), the share of the last four weeks with an activity,
    last week's sessions against the usual week (capped at twice), the busiest of the last
    eight weeks against the usual week (capped at twice: what they can do), the share of challenges
    offered that were completed (with one of each as a prior), whether the last one was
    completed (0.5 when there was none), the last level offered (0 for -1 to 1 for +3), and
    the churn risk (the probability of no activity next week)."""
    usual = np.asarray(usual, float)
    n = usual.shape[0]
    return np.column_stack([
        np.ones(n),
        np.clip(usual / 7.0, 0.0, 1.0),
        np.clip(active_4w, 0.0, 1.0),
        np.clip(np.asarray(last_week, float) / np.maximum(1.0, usual), 0.0, 2.0) / 2.0,
        np.clip(np.asarray(peak, float) / np.maximum(1.0, usual), 0.0, 2.0) / 2.0,
        (np.asarray(completed, float) + 1.0) / (np.asarray(offered, float) + 2.0),
        np.clip(last_completed, 0.0, 1.0),
        (np.clip(last_level, LEVELS[0], LEVELS[-1]) - LEVELS[0]) / (LEVELS[-1] - LEVELS[0]),
        np.clip(risk, 0.0, 1.0),
    ])


class LinearThompson:
    """Thompson sampling with one Bayesian linear reward model per level."""

    def __init__(self, levels: tuple[int, ...] = LEVELS, dim: int = len(FEATURES), prior: float = 1.0,
                 noise: float = 0.25):
        self.levels, self.dim, self.prior, self.noise = tuple(levels), dim, prior, noise
        self.A = np.stack([np.eye(dim) / prior for _ in self.levels])
        self.b = np.zeros((len(self.levels), dim))
        self.n = np.zeros(len(self.levels), dtype=int)
        self._posterior: list[tuple[np.ndarray, np.ndarray]] | None = None

    def posterior(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each level's posterior (mean weights, covariance up to the noise), kept until the
        next update."""
        if self._posterior is None:
            covs = [np.linalg.inv(A) for A in self.A]
            self._posterior = [(cov @ b, cov) for cov, b in zip(covs, self.b, strict=True)]
        return self._posterior

    def choose(self, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A level for each row of ``X`` (the levels themselves, not their indexes): for each
        athlete a reward drawn from each level's posterior at their context; the best wins."""
        X = np.atleast_2d(np.asarray(X, float))
        draws = np.empty((X.shape[0], len(self.levels)))
        for k, (weights, cov) in enumerate(self.posterior()):
            mean = X @ weights
            sd = self.noise * np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", X, cov, X), 0.0))
            draws[:, k] = mean + sd * rng.standard_normal(X.shape[0])
        return np.asarray(self.levels)[np.argmax(draws, axis=1)]

    def expected(self, X: np.ndarray) -> np.ndarray:
        """The posterior mean reward of every level at each context (rows: athletes)."""
        X = np.atleast_2d(np.asarray(X, float))
        return np.column_stack([X @ np.linalg.solve(self.A[k], self.b[k]) for k in range(len(self.levels))])

    def update(self, X: np.ndarray, levels: np.ndarray, rewards: np.ndarray) -> None:
        """Learn from outcomes: the context each level was chosen at, and the reward it got."""
        X = np.atleast_2d(np.asarray(X, float))
        levels, rewards = np.asarray(levels), np.asarray(rewards, float)
        self._posterior = None
        for k, level in enumerate(self.levels):
            rows = levels == level
            if rows.any():
                Xk = X[rows]
                self.A[k] += Xk.T @ Xk
                self.b[k] += Xk.T @ rewards[rows]
                self.n[k] += int(rows.sum())

    def state(self) -> dict:
        """Everything the policy has learnt, as JSON-ready data."""
        return {"version": STATE_VERSION, "levels": list(self.levels), "dim": self.dim, "prior": self.prior,
                "noise": self.noise, "A": self.A.tolist(), "b": self.b.tolist(), "n": self.n.tolist()}

    @classmethod
    def from_state(cls, state: dict) -> LinearThompson:
        """The policy ``state()`` saved; ValueError for a state of another shape or version."""
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            raise ValueError("bandit state of an unknown version")
        try:
            levels = tuple(int(v) for v in state["levels"])
            dim, prior, noise = int(state["dim"]), float(state["prior"]), float(state["noise"])
            A, b, n = np.asarray(state["A"], float), np.asarray(state["b"], float), np.asarray(state["n"], int)
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise ValueError(f"bandit state unreadable: {exc}") from None
        if not (levels and 0 < dim <= 64 and math.isfinite(prior) and prior > 0 and math.isfinite(noise)
                and noise > 0):
            raise ValueError("bandit state has impossible levels, features, prior or noise")
        policy = cls(levels, dim, prior, noise)
        if A.shape != policy.A.shape or b.shape != policy.b.shape or n.shape != policy.n.shape \
                or not (np.isfinite(A).all() and np.isfinite(b).all()) or (n < 0).any():
            raise ValueError("bandit state does not fit its levels and features")
        try:  # each level's precision matrix must be symmetric positive definite (it is prior + X'X)
            if not np.allclose(A, np.transpose(A, (0, 2, 1))):
                raise np.linalg.LinAlgError("not symmetric")
            np.linalg.cholesky(A)
        except np.linalg.LinAlgError:
            raise ValueError("bandit state's matrices are not positive definite") from None
        policy.A, policy.b, policy.n = A, b, n
        policy._posterior = None
        return policy
