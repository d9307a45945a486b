"""The published attacks on privacy zones against what other athletes are shown.

    .venv/bin/python -m bench.privacy_attack [--trials 100] [--seed 0] [--every-map] [--json]

For each family of simulated routes (``wander``, which the hiding was tuned on, and
``streets``, which it was not), hiding scheme (``zone``: ``core.social.privacy``; ``naive``:
a circle centred on the home with the full figures shown), zone radius and method
(``core.social.zone_attack``), prints the share of trials whose estimate of the home lands
within 200 m of it, the median error, and the share of activities that show others a map:
20 simulated runs from one home per trial.
"""

from __future__ import annotations

import argparse
import json

from core.social.zone_attack import CLOSE_M, run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--every-map", action="store_true",
                    help="keep every map, leaving out the draw by how near the zone's point a route leaves "
                         "(core.social.privacy.map_kept), to show what it buys")
    ap.add_argument("--json", action="store_true", help="one JSON line per row instead of a table")
    args = ap.parse_args()
    if args.every_map:
        from core.social import privacy

        privacy.MAP_KEPT_FROM = 0.0
    rows = run(trials=args.trials, seed=args.seed)
    if args.json:
        for r in rows:
            print(json.dumps(r))
        return
    print(f"{'family':<8} {'scheme':<7} {'radius':>7} {'method':<10} {'within ' + str(int(CLOSE_M)) + ' m':>12} "
          f"{'median error':>13} {'maps shown':>11}")
    for r in rows:
        print(f"{r['family']:<8} {r['scheme']:<7} {r['radius_m']:>6.0f}m {r['method']:<10} {r['found_share']:>12.0%} "
              f"{r['median_error_m']:>11.0f} m {r['maps_shown']:>11.0%}")


if __name__ == "__main__":
    main()
