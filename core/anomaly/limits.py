"""What the fastest humans have done: the limits the rules compare an activity with.

Runs: outdoor world records (men's, the faster), in seconds. Rides: what the best riders
can hold on flat or rising ground, from track records (flying 200 m, 1 km time trial,
individual pursuit, hour record). Road rides downhill go faster than any of these, so the
ride rules read speed only where the road does not descend, and power otherwise.
"""

from __future__ import annotations

WORLD_RECORD_S = {
    "run": {400: 43.03, 1000: 131.96, 5000: 755.36, 10000: 1571.0},
    # 400 m from the flying 200 m (9.1 s) pace, then 1 km TT, 4 km pursuit pace, hour record.
    "ride": {400: 20.0, 1000: 55.4, 5000: 5000 / 16.3, 10000: 10000 / 15.8},
}
WORLD_RECORD_TEXT = {
    "run": {400: "43.03 s", 1000: "2:11.96", 5000: "12:35.36", 10000: "26:11"},
    "ride": {400: "about 20 s", 1000: "55.4 s", 5000: "about 5:07", 10000: "about 10:33"},
}
# Sustained speed no runner holds for a minute (the 400 m record averages 9.3 m/s for 43 s).
RUN_SUSTAINED_MPS = 8.5
RUN_SUSTAINED_S = 60.0
# Solo-equivalent power (W/kg) beyond what the best riders hold over each window; our
# estimate ignores drafting and wind, so the margin over the real records is generous.
RIDE_WKG_LIMIT = {60: 14.0, 300: 9.0, 1200: 7.5}
# Without elevation, a ride's speed alone: faster than this for a minute is a vehicle.
RIDE_FLAT_SPEED_MPS = 25.0
RIDE_FLAT_SPEED_S = 60.0
# With elevation: faster than this on a stretch that does not descend more than 1%.
RIDE_LEVEL_SPEED_MPS = 16.7
RIDE_LEVEL_SPEED_S = 90.0
RIDE_LEVEL_MAX_DESCENT = 0.01
