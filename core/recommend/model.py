"""Route suggestions, with no I/O: the same code serves athletes and is evaluated.

Inputs are plain: a ``Catalogue`` of public routes and their features, and ``Event``s (an
athlete completed, rated, saved or dismissed a route, or gave kudos to an activity on it).
The ``Recommender`` trains on the events and ranks, for one athlete, the routes within
reach of where they start that they have not done, by:

- **popular nearby**: how many athletes did the route, discounted with distance from the
  athlete's usual start;
- **content**: how close the route is to the athlete's own profile (usual distance,
  climbing per km, where they start; for a new athlete, what they stated in settings);
- **collaborative**: Surprise trained on the events turned into 1-5 ratings (SVD, or
  KNNBaseline user-based or item-based: ``COLLABORATIVE``), or, where the data outgrows one
  machine, a factor model of implicit feedback (``core.recommend.feedback.implicit``) fitted elsewhere: Spark
  MLlib's ALS (``core.spark.recommend``) passed in as ``factors``;
- **friends**: how many of the athletes they follow did the route (public activities only);
- **hybrid**: a linear score over the inputs of all four (``FEATURES``: popularity,
  nearness, fit of distance and of climbing, the collaborative score, friends), whose
  coefficients are a logistic regression of "did it next" on a validation period; the
  collaborative algorithm is chosen there too (``core.recommend.evaluation``), never on the
  test period.

Every suggestion carries a reason in plain words, taken from the part that contributed
most to its score.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from core import units
from core.recommend.feedback import RATING_SCALE, Event, implicit, ratings

REACH_M = {"run": 15_000.0, "ride": 40_000.0}  # candidates start this near the athlete's usual start
NEAR_M = {"run": 4_000.0, "ride": 12_000.0}  # popularity halves about every this far
DISTANCE_SIGMA = 0.35  # log-distance spread of an athlete's liking around their usual
CLIMB_SIGMA_M_PER_KM = 6.0
TERRAIN_M_PER_KM = {"flat": (6.0, 4.0), "hilly": (15.0, 6.0)}  # stated: centre and spread
COLLABORATIVE = ("svd", "knn_user", "knn_item")
PARTS = ("popular", "content", "collaborative", "friends")
# The hybrid's inputs, each with the part it speaks for (the reason a suggestion gives).
FEATURES = {"popularity": "popular", "trending": "popular", "rated": "popular", "nearness": "content", "distance_fit": "content", "climb_fit": "content",
            "collaborative": "collaborative", "friends": "friends"}
# Until an evaluation on the database's own history has chosen (``core.recommend.evaluation``).
DEFAULT_BLEND = {"popularity": 1.0, "trending": 0.5, "rated": 0.5, "nearness": 1.0, "distance_fit": 1.0, "climb_fit": 1.0,
                 "collaborative": 0.3, "friends": 0.5}
SEED = 7
TRENDING_S = 28 * 86400.0
RATING_PRIOR = 3.0


@dataclass
class Catalogue:
    """Public routes and their features, one row each."""

    ids: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    distance_m: np.ndarray
    climb_m_per_km: np.ndarray
    run_share: np.ndarray  # share of the route's activities that were runs
    names: list[str]

    def __post_init__(self):
        self.index = {int(r): i for i, r in enumerate(self.ids)}

    def __len__(self) -> int:
        return int(self.ids.size)


@dataclass
class Profile:
    """One athlete as the recommender sees them."""

    user: int
    sport: str
    lat: float
    lon: float
    distance_m: float | None = None
    climb_m_per_km: float | None = None
    terrain: str = "any"
    stated: bool = False  # the figures come from settings, not from a history
    done: dict[int, int] = field(default_factory=dict)  # route -> completions
    dismissed: set[int] = field(default_factory=set)


@dataclass
class Suggestion:
    route: int
    score: float
    source: str  # the part that contributed most
    reason: str


def metres(lat0: float, lon0: float, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Approximate ground distance from one point to many (enough for reach and nearness)."""
    k = 111_320.0
    return np.hypot((lat - lat0) * k, (lon - lon0) * k * math.cos(math.radians(lat0)))


def percentile_ranks(x: np.ndarray) -> np.ndarray:
    """Each value's rank among the others, from 0 (lowest) to 1 (highest); ties share."""
    if x.size <= 1:
        return np.ones_like(x, dtype=float)
    order = np.argsort(np.argsort(x, kind="stable"), kind="stable").astype(float)
    # Ties share their mean rank, so a constant column gives no order.
    _, inverse = np.unique(x, return_inverse=True)
    sums = np.bincount(inverse, order)
    counts = np.bincount(inverse)
    return (sums / counts)[inverse] / (x.size - 1)


class Recommender:
    """Trained on events; ranks routes for one athlete at a time."""

    def __init__(self, catalogue: Catalogue, events: list[Event], collaborative: str = "svd",
                 blend: dict[str, float] | None = None, follows: dict[int, set[int]] | None = None,
                 seed: int = SEED, factors=None):
        """``factors``: for ``collaborative="als"``, a function of the ``implicit`` feedback
        that returns the fitted ``Factors`` (``core.spark.recommend.als``)."""
        self.cat = catalogue
        self.factors = factors
        self.blend = dict(blend or DEFAULT_BLEND)
        self.follows = follows or {}
        self.collaborative = collaborative
        self.seed = seed
        known = [e for e in events if e.route in catalogue.index]
        self._known = known
        self.ratings = ratings(known)
        users_of = defaultdict(set)
        for e in known:
            if e.kind == "done":
                users_of[e.route].add(e.user)
        self.users_of = dict(users_of)
        self.popularity = np.array([len(users_of.get(int(r), ())) for r in catalogue.ids], dtype=float)
        # Trending: athletes in the last TRENDING_S of the history. Rated: the mean explicit
        # rating, pulled towards the middle of the scale by RATING_PRIOR ratings of 3.
        latest = max((e.at for e in known), default=0.0)
        recent = defaultdict(set)
        stars = defaultdict(list)
        for e in known:
            if e.kind == "done" and e.at >= latest - TRENDING_S:
                recent[e.route].add(e.user)
            elif e.kind == "rating":
                stars[e.route].append(e.value)
        self.trending = np.array([len(recent.get(int(r), ())) for r in catalogue.ids], dtype=float)
        self.rated = np.array([(sum(stars.get(int(r), ())) + 3.0 * RATING_PRIOR)
                               / (len(stars.get(int(r), ())) + RATING_PRIOR) for r in catalogue.ids])
        self.routes_of: dict[int, set[int]] = defaultdict(set)
        for e in known:
            if e.kind == "done":
                self.routes_of[e.user].add(e.route)
        self.algo = self._fit() if self.ratings else None

    # -- collaborative -------------------------------------------------------------------

    def _negatives(self, rng: np.random.Generator) -> list[tuple[int, int, float]]:
        """For SVD: as many routes each athlete passed over as they did, rated 1. Ratings
        alone hold only what athletes chose, so a model of them cannot tell a route nobody
        near wanted from one nobody near knew; routes within reach that an athlete never
        did, while doing others, are the missing half."""
        c = self.cat
        out = []
        for user, done in self.routes_of.items():
            idx = [c.index[r] for r in done]
            lat, lon = float(np.mean(c.lat[idx])), float(np.mean(c.lon[idx]))
            run = float(np.mean(c.run_share[idx])) >= 0.5
            near = metres(lat, lon, c.lat, c.lon) <= REACH_M["run" if run else "ride"]
            pool = np.flatnonzero(near & ((c.run_share >= 0.5) == run) & ~np.isin(c.ids, list(done)))
            if pool.size:
                for i in rng.choice(pool, size=min(len(done), pool.size), replace=False):
                    out.append((user, int(c.ids[i]), RATING_SCALE[0]))
        return out

    def _fit(self):
        if self.collaborative == "als":
            if self.factors is None:
                raise ValueError("the als model needs a factors function (core.spark.recommend.als)")
            fitted = self.factors(implicit(self._known))
            self.inner = np.array([fitted.items.get(int(r), -1) for r in self.cat.ids])
            return fitted
        import pandas as pd
        from surprise import SVD, Dataset, KNNBasic, Reader

        rows = [(u, r, v) for (u, r), v in self.ratings.items()]
        if self.collaborative == "svd":
            rows += self._negatives(np.random.default_rng(self.seed))
        frame = pd.DataFrame(rows, columns=["user", "item", "rating"])
        train = Dataset.load_from_df(frame, Reader(rating_scale=RATING_SCALE)).build_full_trainset()
        self.trainset = train
        self.inner = np.array([train._raw2inner_id_items.get(int(r), -1) for r in self.cat.ids])
        if self.collaborative == "svd":
            algo = SVD(n_factors=32, n_epochs=30, random_state=self.seed)
        else:
            # Cosine similarity of the rating vectors; suggestions sum the similarities
            # (implicit item-based and user-based neighbourhoods: how much a route goes with
            # the athlete's routes, how many similar athletes did it).
            algo = KNNBasic(k=40, sim_options={"name": "cosine", "user_based": self.collaborative == "knn_user"},
                            verbose=False)
        algo.fit(train)
        if self.collaborative == "knn_user":
            liked = [(u, i) for u, items in train.ur.items() for i, v in items if v >= 3]
            from scipy.sparse import csr_matrix

            rows_, cols = (np.array(x, dtype=int) for x in zip(*liked)) if liked else (np.empty(0, int),) * 2
            self.liked = csr_matrix((np.ones(rows_.size), (rows_, cols)), shape=(train.n_users, train.n_items))
        return algo

    def predicted(self, user: int, routes: np.ndarray) -> np.ndarray:
        """The collaborative score of each route for the athlete: SVD's estimated rating, or
        the summed similarity of the route (item-based) or of the athletes who did it
        (user-based). Where the model knows neither, the global mean or nothing."""
        if self.algo is None:
            return np.zeros(routes.size)
        inner = np.array([self.inner[self.cat.index[int(r)]] for r in routes], dtype=int)
        known = inner >= 0
        if self.collaborative == "als":
            f, out = self.algo, np.zeros(routes.size)
            row = f.users.get(user)
            if row is not None:
                out[known] = f.item_vectors[inner[known]] @ f.user_vectors[row]
            return out
        train, algo = self.trainset, self.algo
        iu = train._raw2inner_id_users.get(user)
        out = np.zeros(routes.size)
        if self.collaborative == "svd":
            out[:] = train.global_mean + (algo.bu[iu] if iu is not None else 0.0)
            out[known] += algo.bi[inner[known]]
            if iu is not None:
                out[known] += algo.qi[inner[known]] @ algo.pu[iu]
            return out
        if iu is None:
            return out
        if self.collaborative == "knn_item":
            mine = [i for i, v in train.ur[iu] if v >= 3]
            if mine:
                out[known] = algo.sim[np.ix_(mine, inner[known])].sum(axis=0)
            return out
        sims = algo.sim[iu].copy()
        sims[iu] = 0.0
        neighbours = np.argsort(-sims)[:algo.k]
        weights = sims[neighbours]
        out[known] = (self.liked[neighbours][:, inner[known]].T @ weights).ravel()
        return out

    # -- the parts -----------------------------------------------------------------------

    def candidates(self, p: Profile) -> np.ndarray:
        """Indexes of the routes within reach, of the athlete's sport, not done or dismissed."""
        c = self.cat
        near = metres(p.lat, p.lon, c.lat, c.lon) <= REACH_M.get(p.sport, REACH_M["run"])
        sport = c.run_share >= 0.5 if p.sport == "run" else c.run_share < 0.5
        seen = set(p.done) | p.dismissed
        ok = near & sport & ~np.isin(c.ids, np.fromiter(seen, dtype=c.ids.dtype, count=len(seen)))
        return np.flatnonzero(ok)

    def features(self, p: Profile, idx: np.ndarray) -> np.ndarray:
        """The hybrid's inputs for each candidate, one column per ``FEATURES`` entry, each a
        log-scale liking (0 where the athlete gives nothing to compare with)."""
        c = self.cat
        near = -metres(p.lat, p.lon, c.lat[idx], c.lon[idx]) / NEAR_M.get(p.sport, NEAR_M["run"])
        fit_d = np.zeros(idx.size)
        if p.distance_m:
            fit_d = -0.5 * (np.log(np.maximum(c.distance_m[idx], 1.0) / p.distance_m) / DISTANCE_SIGMA) ** 2
        climb = c.climb_m_per_km[idx]
        fit_c = np.zeros(idx.size)
        if p.terrain in TERRAIN_M_PER_KM:
            centre, spread = TERRAIN_M_PER_KM[p.terrain]
            off = np.maximum(climb - centre, 0) if p.terrain == "flat" else np.minimum(climb - centre, 0)
            fit_c = -0.5 * (off / spread) ** 2
        elif p.climb_m_per_km is not None:
            fit_c = -0.5 * ((climb - p.climb_m_per_km) / CLIMB_SIGMA_M_PER_KM) ** 2
        followed = self.follows.get(p.user, set())
        friends = np.array([len(self.users_of.get(int(r), set()) & followed) for r in c.ids[idx]], dtype=float)
        collaborative = self.predicted(p.user, c.ids[idx])
        if self.collaborative in ("knn_user", "knn_item"):  # summed similarities: a count's scale
            collaborative = np.log1p(collaborative)
        return np.column_stack([np.log1p(self.popularity[idx]), np.log1p(self.trending[idx]), self.rated[idx],
                                near, fit_d, fit_c, collaborative, np.log1p(friends)])

    def parts(self, p: Profile, idx: np.ndarray, x: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Each part alone, as its own ranking (the baselines the evaluation reports)."""
        x = self.features(p, idx) if x is None else x
        popularity, _, _, near, fit_d, fit_c, collaborative, friends = x.T
        return {"popular": popularity * np.exp(near) + 1e-6 * np.exp(near),
                "content": np.exp(fit_d + fit_c) * (0.5 + 0.5 * np.exp(near)),
                "collaborative": collaborative, "friends": friends}

    def hybrid(self, x: np.ndarray) -> np.ndarray:
        return x @ np.array([self.blend.get(name, 0.0) for name in FEATURES])

    def rank(self, p: Profile, k: int = 10, method: str = "hybrid") -> list[Suggestion]:
        idx = self.candidates(p)
        if idx.size == 0:
            return []
        x = self.features(p, idx)
        parts = self.parts(p, idx, x)
        tie = 1e-9 * percentile_ranks(parts["popular"])  # ties (nothing to go on) go to the popular
        if method == "hybrid":
            score = self.hybrid(x) + tie
        elif method in parts:
            score = parts[method] + tie
        elif method == "random":
            score = np.random.default_rng(self.seed + p.user).random(idx.size)
        else:
            raise ValueError(f"unknown method {method!r}")
        top = np.argsort(-score, kind="stable")[:k]
        coef = np.array([self.blend.get(name, 0.0) for name in FEATURES])
        lift = (x - np.median(x, axis=0)) * coef  # what each input adds over a middling candidate
        out = []
        for j in top:
            if method in parts:
                source = method
            elif p.stated and x[j, 4] >= -0.5 and x[j, 5] >= -0.5:
                source = "content"  # what they asked for, within half a spread: say so
            else:
                by_part = Counter()
                for f, name in enumerate(FEATURES):
                    by_part[FEATURES[name]] += lift[j, f]
                source = max(by_part, key=by_part.get)
            out.append(Suggestion(int(self.cat.ids[idx[j]]), float(score[j]), source,
                                  self.reason(p, int(idx[j]), source)))
        return out

    # -- reasons -------------------------------------------------------------------------

    def _most_like(self, p: Profile, i: int) -> tuple[int, int] | None:
        """The athlete's own route most like route ``i`` (distance and climbing), with
        how often they did it."""
        c = self.cat
        best, best_d = None, math.inf
        for r, n in p.done.items():
            j = c.index.get(r)
            if j is None:
                continue
            d = abs(math.log(max(c.distance_m[j], 1) / max(c.distance_m[i], 1))) + \
                abs(c.climb_m_per_km[j] - c.climb_m_per_km[i]) / 10.0
            if d < best_d:
                best, best_d = (j, n), d
        return best

    def reason(self, p: Profile, i: int, source: str) -> str:
        c = self.cat
        noun = "runners" if p.sport == "run" else "riders"
        verb = "ran" if p.sport == "run" else "rode"
        size = units.distance(float(c.distance_m[i]), digits=1).replace(".0 km", " km")
        flat = "flat" if c.climb_m_per_km[i] < 6 else ("hilly" if c.climb_m_per_km[i] >= 15 else "rolling")
        if source == "friends":
            n = len(self.users_of.get(int(c.ids[i]), set()) & self.follows.get(p.user, set()))
            if n:
                return f"{n} athlete{'s' if n != 1 else ''} you follow did it"
            source = "popular"
        if source == "collaborative":
            return f"popular with {noun} who {'run' if p.sport == 'run' else 'ride'} your routes"
        if source == "content":
            if p.stated:
                asked = []
                if p.distance_m and abs(math.log(max(c.distance_m[i], 1.0) / p.distance_m)) <= 0.2:
                    asked.append(size)
                if p.terrain == flat:
                    asked.append(flat)
                if asked:
                    return f"{' and '.join(asked)}, as you asked"
                return f"{size} and {flat}, near where you start"
            like = self._most_like(p, i)
            if like is not None:
                j, n = like
                times = "once" if n == 1 else ("twice" if n == 2 else f"{n} times")
                return f"like {c.names[j]}, which you {verb} {times}"
            return f"{size} and {flat}, like your usual"
        athletes = int(self.popularity[i])
        if athletes:
            return f"done by {athletes} athlete{'s' if athletes != 1 else ''} near where you start"
        return f"{size} {flat}, near where you start"
