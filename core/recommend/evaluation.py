"""An offline evaluation of route suggestions that cannot flatter itself.

- **Time-based split.** Each athlete's history before ``test_at`` trains; the first route
  they did after it that they had never done before is what a good suggestion list holds
  (suggestions are routes to try: done routes are never suggested, and repeats are no
  target).
- **Every choice on a validation period.** The collaborative algorithm and the hybrid's
  coefficients are chosen on the period just before ``test_at`` (training on what came before
  it), never on the test period.
- **Ranked against every route.** Each method ranks the whole catalogue for each athlete
  (its candidates are within reach; a target out of reach counts as a miss).
- **Cold start apart.** Athletes with no history before ``test_at`` are reported alone,
  ranked from what they stated in settings.

Metrics: HitRate@10 (a target among the ten), NDCG@10 (binary relevance), catalogue
coverage (the share of routes that appear in anyone's ten), each with the athletes counted.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np

from core.recommend.model import (
    COLLABORATIVE,
    FEATURES,
    SEED,
    Catalogue,
    Event,
    Profile,
    Recommender,
)

K = 10
METHODS = ("hybrid", "svd", "knn_user", "knn_item", "content", "popular", "friends", "random")
MIN_VALIDATION_ATHLETES = 30
MAX_VALIDATION_ATHLETES = 3000
KNN_MAX = 5000


@dataclass
class Split:
    train: list[Event]
    targets: dict[int, set[int]]  # athlete -> routes first done after the split
    warm: list[int]
    cold: list[int]


def split(events: list[Event], at: float, until: float | None = None) -> Split:
    before = [e for e in events if e.at < at]
    seen = defaultdict(set)
    for e in before:
        if e.kind == "done":
            seen[e.user].add(e.route)
    targets = {}
    for e in sorted(events, key=lambda e: e.at):
        if e.kind == "done" and at <= e.at < (until if until is not None else math.inf) \
                and e.route not in seen[e.user] and e.user not in targets:
            targets[e.user] = {e.route}
    active = {e.user for e in before}
    warm = sorted(u for u in targets if u in active)
    cold = sorted(u for u in targets if u not in active)
    return Split(before, dict(targets), warm, cold)


def history_profile(user: int, sport: str, events: list[Event], cat: Catalogue,
                    starts: dict[int, tuple[float, float]]) -> Profile:
    """An athlete's profile from their own history (what the service builds from activities)."""
    done = Counter(e.route for e in events if e.user == user and e.kind == "done")
    dismissed = {e.route for e in events if e.user == user and e.kind == "dismiss"}
    idx = [cat.index[r] for r in done.elements() if r in cat.index]
    lat, lon = starts[user]
    return Profile(user, sport, lat, lon,
                   distance_m=float(np.median(cat.distance_m[idx])) if idx else None,
                   climb_m_per_km=float(np.median(cat.climb_m_per_km[idx])) if idx else None,
                   done=dict(done), dismissed=dismissed)


def ndcg(ranked: list[int], targets: set[int], k: int = K) -> float:
    dcg = sum(1.0 / math.log2(i + 2) for i, r in enumerate(ranked[:k]) if r in targets)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(targets), k)))
    return dcg / ideal if ideal else 0.0


def score_lists(lists: dict[int, list[int]], targets: dict[int, set[int]], catalogue_size: int) -> dict:
    users = list(lists)
    hits = [bool(set(lists[u][:K]) & targets[u]) for u in users]
    shown = {r for u in users for r in lists[u][:K]}
    return {"athletes": len(users), f"hit_rate@{K}": float(np.mean(hits)) if users else 0.0,
            f"ndcg@{K}": float(np.mean([ndcg(lists[u], targets[u]) for u in users])) if users else 0.0,
            "coverage": len(shown) / catalogue_size if catalogue_size else 0.0}


def _profiles(users, sports, train, cat, starts, stated):
    mine = defaultdict(list)
    for e in train:
        mine[e.user].append(e)
    return {u: stated[u] if u in stated else history_profile(u, sports[u], mine.get(u, []), cat, starts)
            for u in users}


def fit_blend(rows: list[tuple[np.ndarray, np.ndarray, set]]) -> dict[str, float]:
    """Coefficients of the hybrid: a logistic regression of "did it next" on the inputs,
    over every candidate of every athlete in ``rows`` ((ids, features, targets) each),
    brought back to the inputs' own scale (only the order matters)."""
    from sklearn.linear_model import LogisticRegression

    x = np.vstack([f for _, f, _ in rows])
    y = np.concatenate([np.isin(ids, list(t)) for ids, _, t in rows])
    mean, std = x.mean(axis=0), x.std(axis=0)
    std[std == 0] = 1.0
    model = LogisticRegression(C=1.0, max_iter=2000).fit((x - mean) / std, y)
    return {name: round(float(c / sd), 4) for name, c, sd in zip(FEATURES, model.coef_[0], std)}


def _hit_rate(rows, blend: dict[str, float]) -> float:
    coef = np.array([blend[n] for n in FEATURES])
    hits = [bool(t.intersection(ids[np.argsort(-(f @ coef), kind="stable")[:K]].tolist())) for ids, f, t in rows]
    return float(np.mean(hits)) if hits else 0.0


def choose(cat: Catalogue, events: list[Event], sports: dict, starts: dict, validate_at: float,
           test_at: float, follows: dict[int, set[int]] | None = None, algorithms=COLLABORATIVE,
           factors=None) -> dict:
    """The collaborative algorithm and the hybrid's coefficients, from the validation period
    (train before ``validate_at``, targets up to ``test_at``): for each algorithm, the
    coefficients fitted on half the athletes are scored on the other half and the other
    way round; the best algorithm's coefficients are then fitted on all of them.
    ``algorithms``: those to try (``("als",)`` with ``factors`` from ``core.spark.recommend``)."""
    sp = split(events, validate_at, test_at)
    if len(sp.warm) < MIN_VALIDATION_ATHLETES:
        return {"collaborative": algorithms[0], "blend": None, "validation_athletes": len(sp.warm)}
    if len(sp.warm) > MAX_VALIDATION_ATHLETES:  # a fixed sample judges as well, at a bounded cost
        rng = np.random.default_rng(SEED)
        sp.warm = sorted(rng.choice(sp.warm, MAX_VALIDATION_ATHLETES, replace=False).tolist())
    profiles = _profiles(sp.warm, sports, sp.train, cat, starts, {})
    best = (-1.0, None, None)
    users = {e.user for e in sp.train}
    for algo in algorithms:
        # Surprise's neighbourhood models hold a dense similarity matrix (8 bytes per pair):
        # 20,000 routes would need 3.2 GB, 100,000 athletes 80 GB. Past KNN_MAX they are not tried.
        if algo == "knn_item" and len(cat) > KNN_MAX or algo == "knn_user" and len(users) > KNN_MAX:
            continue
        rec = Recommender(cat, sp.train, collaborative=algo, follows=follows, factors=factors)
        rows = {}
        for u in sp.warm:
            idx = rec.candidates(profiles[u])
            if idx.size:
                rows[u] = (cat.ids[idx], rec.features(profiles[u], idx), sp.targets[u])
        halves = [[r for u, r in rows.items() if u % 2 == h] for h in (0, 1)]
        # Each half must hold a target among its candidates, or there is nothing to fit.
        if not all(any(np.isin(ids, list(t)).any() for ids, _, t in half) for half in halves):
            continue
        rate = (_hit_rate(halves[1], fit_blend(halves[0])) * len(halves[1])
                + _hit_rate(halves[0], fit_blend(halves[1])) * len(halves[0])) / len(sp.warm)
        if rate > best[0] + 1e-12:
            best = (rate, algo, fit_blend(list(rows.values())))
    return {"collaborative": best[1] or algorithms[0], "blend": best[2],  # None: the defaults "validation_hit_rate": round(best[0], 4),
            "validation_athletes": len(sp.warm)}


def evaluate(cat: Catalogue, events: list[Event], sports: dict[int, str], starts: dict[int, tuple[float, float]],
             stated: dict[int, Profile], validate_at: float, test_at: float,
             follows: dict[int, set[int]] | None = None, factors=None) -> dict:
    """The table: each method on warm athletes and on cold-start athletes, in one run.
    With ``factors`` (Spark's ALS, ``core.spark.recommend``), two rows more: ALS alone, and
    the hybrid over ALS with its own coefficients ("hybrid_als", what training on Spark serves)."""
    chosen = choose(cat, events, sports, starts, validate_at, test_at, follows)
    sp = split(events, test_at)
    warm = _profiles(sp.warm, sports, sp.train, cat, starts, {})
    cold = {u: stated[u] for u in sp.cold if u in stated}
    recs = {algo: Recommender(cat, sp.train, collaborative=algo, blend=chosen["blend"], follows=follows)
            for algo in COLLABORATIVE}
    best = recs[chosen["collaborative"]]
    methods = METHODS
    if factors is not None:
        chosen["als"] = choose(cat, events, sports, starts, validate_at, test_at, follows, ("als",), factors)
        recs["als"] = Recommender(cat, sp.train, collaborative="als", blend=chosen["als"]["blend"],
                                  follows=follows, factors=factors)
        methods = (*METHODS, "als", "hybrid_als")
    table = {}
    for method in methods:
        rec = recs["als"] if method == "hybrid_als" else recs[method] if method in recs else best
        how = "collaborative" if method in recs else "hybrid" if method == "hybrid_als" else method
        row = {}
        for group, profiles in (("warm", warm), ("cold", cold)):
            lists = {u: [s.route for s in rec.rank(p, K, how)] for u, p in profiles.items()}
            row[group] = score_lists(lists, sp.targets, len(cat))
        table[method] = row
    return {"chosen": chosen, "routes": len(cat), "events": len(events), "train_events": len(sp.train),
            "table": table}


def lift(table: dict, method: str = "hybrid", baseline: str = "popular", group: str = "warm") -> float:
    base = table[baseline][group][f"hit_rate@{K}"]
    return table[method][group][f"hit_rate@{K}"] / base - 1.0 if base else math.inf


def run_generated(seed: int = 1, factors=None, **kwargs) -> dict:
    from core.recommend.population import T0, WEEK_S, generate

    pop = generate(seed=seed, **kwargs)
    sports = {u: a.sport for u, a in pop.athletes.items()}
    starts = {u: a.home for u, a in pop.athletes.items()}
    stated = {u: pop.stated(u) for u, a in pop.athletes.items() if a.joins_week > 0}
    test_week = max(a.joins_week for a in pop.athletes.values()) or int(pop.weeks * 0.75)
    follows = {u: set(a.friends) for u, a in pop.athletes.items()}
    out = evaluate(pop.catalogue, pop.events, sports, starts, stated,
                   validate_at=T0 + (test_week - 4) * WEEK_S, test_at=T0 + test_week * WEEK_S, follows=follows,
                   factors=factors)
    out["population"] = {"seed": seed, "athletes": len(pop.athletes), "weeks": pop.weeks, "test_week": test_week}
    return out


def run_database(s, min_athletes: int = MIN_VALIDATION_ATHLETES, factors=None) -> dict:
    """The same evaluation on the database's own history: the split at the 80th percentile
    of completion times, validation from the 60th. Profiles (sport, where they start) come
    from activities before the split only."""
    import statistics

    from sqlalchemy import select

    from core.activities.tables import Activity
    from core.recommend.service import catalogue, events, settings_of
    from core.routes.tables import RouteActivity
    from core.social.tables import Friend

    cat, evs = catalogue(s), events(s)
    times = sorted(e.at for e in evs if e.kind == "done")
    if not len(cat) or len(times) < 10:
        return {"skipped": f"too little history: {len(cat)} routes, {len(times)} completions"}
    validate_at, test_at = float(np.quantile(times, 0.6)), float(np.quantile(times, 0.8))
    # Only what existed before the split: routes someone had done, follows already made.
    known = {e.route for e in evs if e.kind == "done" and e.at < test_at}
    keep = np.isin(cat.ids, list(known))
    cat = Catalogue(cat.ids[keep], cat.lat[keep], cat.lon[keep], cat.distance_m[keep], cat.climb_m_per_km[keep],
                    cat.run_share[keep], [n for n, k in zip(cat.names, keep) if k])
    graph = defaultdict(set)
    for u, f, at in s.execute(select(Friend.user_id, Friend.friend_id, Friend.created_at)):
        if at is None or at.timestamp() < test_at:
            graph[u].add(f)
    sports, starts, stated = {}, {}, {}
    rows = s.execute(select(RouteActivity.user_id, Activity.sport, RouteActivity.start_lat, RouteActivity.start_lon,
                            Activity.start_time)
                     .join(Activity, Activity.id == RouteActivity.activity_id)
                     .where(RouteActivity.start_lat.is_not(None))).all()
    per_user = defaultdict(list)
    for u, sport, lat, lon, t in rows:
        if t is not None and t.timestamp() < test_at:
            per_user[u].append((sport, lat, lon))
    for u, xs in per_user.items():
        sports[u] = Counter(x[0] for x in xs).most_common(1)[0][0]
        starts[u] = (statistics.median(x[1] for x in xs), statistics.median(x[2] for x in xs))
    for u in {e.user for e in evs} - set(per_user):
        st = settings_of(s, u)
        if st is not None and st.area_lat is not None:
            stated[u] = Profile(u, st.sport or "run", st.area_lat, st.area_lon, distance_m=st.usual_distance_m,
                                terrain=st.terrain, stated=True)
            sports[u], starts[u] = stated[u].sport, (st.area_lat, st.area_lon)
    sp = split(evs, test_at)
    warm = [u for u in sp.warm if u in starts]
    if len(warm) < min_athletes:
        return {"skipped": f"too few athletes to judge: {len(warm)} did a new route after the split "
                           f"(at least {min_athletes} needed)"}
    known = {e.user for e in evs if e.user in starts}
    out = evaluate(cat, [e for e in evs if e.user in known], sports, starts, stated, validate_at, test_at, graph,
                   factors)
    out["split"] = {"validate_at": validate_at, "test_at": test_at}
    return out
