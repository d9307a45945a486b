"""``python -m core recommend``: route and athlete suggestions as JSON lines, and the
offline evaluation."""

from __future__ import annotations

import json
import sys

from core.cli.admin import open_sessions


def _user(s, name):
    from core.accounts.users import user_by_name

    user = user_by_name(s, name)
    if user is None:
        print(f"error: no user {name!r}", file=sys.stderr)
    return user


def cmd_routes(args) -> int:
    from core.recommend.service import suggestions_for

    Session = open_sessions()
    with Session() as s:
        user = _user(s, args.user)
        if user is None:
            return 2
        picked = suggestions_for(s, user.id, args.limit)
        if not picked:
            print("no suggestions yet: record an activity, or say your area, sport and usual distance "
                  "in settings", file=sys.stderr)
        for rank, (route, sug) in enumerate(picked, 1):
            sport = max(route.sports or {"run": 1}, key=(route.sports or {"run": 1}).get)
            print(json.dumps({"rank": rank, "route_id": route.id, "name": route.name, "sport": sport,
                              "distance_m": round(route.distance_m or route.path_m, 1),
                              "elevation_gain_m": round(route.elevation_gain_m, 1)
                              if route.elevation_gain_m is not None else None,
                              "start_lat": route.start_lat, "start_lon": route.start_lon,
                              "polyline": route.polyline, "score": round(float(sug.score), 4),
                              "reason": sug.reason}, ensure_ascii=False))
    return 0


def cmd_athletes(args) -> int:
    from core.recommend.athletes import suggest_athletes

    Session = open_sessions()
    with Session() as s:
        user = _user(s, args.user)
        if user is None:
            return 2
        for rank, a in enumerate(suggest_athletes(s, user.id, args.limit), 1):
            print(json.dumps({"rank": rank, "username": a.user.username, "score": round(a.score, 4),
                              "reason": a.reason}, ensure_ascii=False))
    return 0


def _print_table(out: dict, title: str) -> None:
    from core.recommend.evaluation import K, lift

    print(f"{title}: {out['routes']} routes, {out['events']} events ({out['train_events']} before the split)")
    chosen = out["chosen"]
    print(f"  chosen on the validation period ({chosen.get('validation_athletes', 0)} athletes): "
          f"collaborative {chosen['collaborative']}, hybrid coefficients {chosen.get('blend')}")
    if "als" in chosen:
        print(f"  on Spark: hybrid_als coefficients {chosen['als'].get('blend')}")
    print(f"  {'method':<10} {'athletes':>8} {'HitRate@' + str(K):>11} {'NDCG@' + str(K):>9} {'coverage':>9}   "
          f"{'cold: athletes':>14} {'HitRate':>8} {'NDCG':>7}")
    for method, row in out["table"].items():
        w, c = row["warm"], row["cold"]
        print(f"  {method:<10} {w['athletes']:>8} {w[f'hit_rate@{K}']:>11.3f} {w[f'ndcg@{K}']:>9.3f} "
              f"{w['coverage']:>9.3f}   {c['athletes']:>14} {c[f'hit_rate@{K}']:>8.3f} {c[f'ndcg@{K}']:>7.3f}")
    t = out["table"]
    print(f"  hybrid against most-popular-nearby, HitRate@{K}: {lift(t) * 100:+.1f}%")
    rnd = t["random"]["cold"][f"hit_rate@{K}"]
    if rnd:
        print(f"  cold start, hybrid against random: {t['hybrid']['cold'][f'hit_rate@{K}'] / rnd:.1f}x")


def cmd_evaluate(args) -> int:
    from core.config import load_settings
    from core.recommend.evaluation import run_database, run_generated

    factors = None
    settings = load_settings()
    if settings.spark_master:  # with Spark: ALS's rows too (core.spark.recommend)
        from core.spark.recommend import als
        from core.spark.session import session

        factors = als(session(settings))
    results = {}
    if args.source in ("generated", "both"):
        results["generated"] = run_generated(seed=args.seed, athletes=args.athletes, routes=args.routes,
                                             factors=factors)
    if args.source in ("database", "both"):
        Session = open_sessions()
        with Session() as s:
            results["database"] = run_database(s, factors=factors)
    if args.json:
        print(json.dumps(results, default=str))
        return 0
    for name, out in results.items():
        if "table" not in out:
            print(f"{name}: {out.get('skipped', 'nothing to evaluate')}")
            continue
        title = (f"generated population (seed {args.seed}, {out['population']['athletes']} athletes)"
                 if name == "generated" else "this database")
        _print_table(out, title)
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("recommend", help="route and athlete suggestions; their offline evaluation")
    rec = p.add_subparsers(dest="recommend_command", required=True)
    q = rec.add_parser("routes", help="suggested routes for an athlete, one JSON line each")
    q.add_argument("--user", required=True)
    q.add_argument("--limit", type=int, default=10)
    q.set_defaults(func=cmd_routes)
    q = rec.add_parser("athletes", help="suggested athletes to follow, one JSON line each")
    q.add_argument("--user", required=True)
    q.add_argument("--limit", type=int, default=10)
    q.set_defaults(func=cmd_athletes)
    q = rec.add_parser("evaluate", help="HitRate@10, NDCG@10 and coverage of every method, time-based split",
                       description="Train on each athlete's earlier history, test on the next new route they "
                                   "did; every choice made on a validation period before the test. Sources: "
                                   "a generated population (docs/recommendations.md), the database's own "
                                   "history, or both.")
    q.add_argument("--source", choices=("generated", "database", "both"), default="both")
    q.add_argument("--seed", type=int, default=1)
    q.add_argument("--athletes", type=int, default=1200)
    q.add_argument("--routes", type=int, default=1500)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_evaluate)
