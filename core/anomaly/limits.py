"""What the fastest humans have done: the limits the rules compare an activity with.

Runs: outdoor world records (men's, the faster), in seconds. Rides: what the best riders
can hold on flat or rising ground, from track records (flying 200 m, 1 km time trial,
individual pursuit, hour record). Road rides downhill go faster than any of these, so the
ride rules read speed only where the road does not descend, and power otherwise.

Gaps in the recording (the fixes stop and resume elsewhere) are read against the fastest
average speed anyone holds for about the gap's duration: for runs the record pace of the
race lasting about that long, from 200 m to the marathon; for rides the track records up
to the hour, never below the level-road speed limit below.
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

# A gap shorter than this in a straight line is GPS noise or a short signal loss (a tunnel).
GAP_MIN_M = 1000.0
# Each end of a gap may sit up to 50 m off (the cleaner drops fixes reported less accurate),
# so the straight line across a gap is shortened by this much before it is judged.
GAP_POSITION_ERROR_M = 100.0
# Runs: world records (men's, outdoor) in seconds, from 200 m (Bolt, 19.19 s, 2009) to the
# half marathon (Kejelcha, 57:30, Valencia 2024; Kiplimo's 56:42 in Barcelona 2025 was not
# ratified) and the marathon (Kiptum, 2:00:35, Chicago 2023). Held speed is interpolated
# in log duration between the records; past the marathon the marathon's pace is kept.
GAP_RUN_RECORD_S = {200: 19.19, **WORLD_RECORD_S["run"], 21097.5: 3450.0, 42195: 7235.0}
# Rides: the track records above plus the hour record (Ganna, 56.792 km, 2022); the bound
# never drops below RIDE_LEVEL_SPEED_MPS (60 km/h, above the hour record's 56.8 km/h).
# That holds where the gap does not descend more than RIDE_LEVEL_MAX_DESCENT; across a
# descent, or without elevation on both sides, RIDE_FLAT_SPEED_MPS whatever the duration.
GAP_RIDE_RECORD_S = {**WORLD_RECORD_S["ride"], 56792: 3600.0}
# A gap is also read against the athlete's own pace in the same activity: the straight line
# is never longer than the path, so an honest signal loss never crosses faster than the
# athlete moves elsewhere. Beyond GAP_OWN_FACTOR times their 95th-percentile 30-second
# speed while moving (and at least GAP_OWN_FLOOR_MPS: a walker may jog a while), it was not them.
# Only where the gap is known not to descend more than 1% (or, for a run, has no elevation):
# downhill a rider goes twice as fast as on the flat. A rider's factor is larger: riding in a
# group's shelter for a while takes a third or more off the effort a speed needs.
GAP_OWN_FACTOR = {"run": 1.3, "ride": 1.5}
GAP_OWN_FLOOR_MPS = {"run": 3.0, "ride": 8.0}
# Runs: the tighter of two own-pace bounds. A gap is also read against the runner's best
# average speed over the gap's duration of moving time anywhere else in the activity (a
# 7-minute gap against their best 7 minutes on the move: stops at lights do not lower it).
# Crossing it GAP_HELD_FACTOR times faster means running the unseen stretch, in a straight
# line, clearly faster than any stretch as long that was seen. Read only with at least
# GAP_HELD_MIN_RECORDED times the gap's duration on the move elsewhere (with less, the "best"
# is a single sample of the runner's pace). Rides are left to the fastest stretches: a rider's
# speed follows wind, drafting and terrain too much for a best average to bound it.
GAP_HELD_FACTOR = 1.25
GAP_HELD_MIN_RECORDED = 2.0
# A gap the athlete's heart rested through: recorded again with the heart rate GAP_HR_DROP
# beats or more below what it was as the points stopped, and down among the activity's
# lowest (at or under its 10th percentile), after at least GAP_HR_MIN_S, yet the straight
# line across it was covered at GAP_HR_MIN_MPS or more. Nobody covers kilometres on foot or
# by pedal while their heart settles towards rest (a heart rate recovers by some 20-40 beats
# in the first minute or two of rest); sitting in a car they do. Heart rate comes from its
# own sensor, so it is read as recorded either side: the median over GAP_HR_BEFORE_S before
# the gap and GAP_HR_AFTER_S after it (a minute: a sensor that re-locks reads low for seconds,
# a rested heart stays low for a minute or more). Runs only: a rider covers kilometres with
# the heart settling, coasting downhill or sitting in a group's shelter.
GAP_HR_DROP = 25.0
GAP_HR_MIN_S = 120.0
GAP_HR_MIN_MPS = 2.0
GAP_HR_BEFORE_S = 30.0
GAP_HR_AFTER_S = 60.0

# Climbing: the best ascent rate (metres gained per hour, "VAM") over windows of 5, 10, 20
# and 40 minutes of smoothed elevation. What the best humans hold, roughly:
# - riders: about 1,800-1,900 m/h for 30-40 min (Pogacar up Plateau de Beille, Tour de
#   France 2024: 15.8 km at 7.9% in 39:41, about 1,890 m/h; Pantani's Alpe d'Huez, 1997:
#   about 1,070 m in 37:35, about 1,710 m/h), about 2,000-2,100 m/h on climbs of about
#   10 minutes, and up to about 2,500 m/h for three minutes up the Mur de Huy (1.3 km at
#   9.6% in under 3 min at the Fleche Wallonne);
# - runners: the vertical-kilometre record at Fully (1,000 m up in under 30 min, about
#   2,000-2,100 m/h) and stair races (Empire State Building Run-Up, about 320 m in 9:33,
#   Crake 2003: about 2,000 m/h for 10 min).
# One table serves both sports (the higher of the two for each duration), with a margin
# of 10-15% for what smoothed GPS or barometric altitude can add over a window; no real
# recording of ours climbs faster than about 1,400 m/h for 5 min or 1,300 m/h for 10 min.
CLIMB_RATE_LIMIT_M_PER_H = {300: 2800.0, 600: 2300.0, 1200: 2250.0, 2400: 2150.0}
# A climb smaller than this is never judged, whatever its rate: altitude noise and steps.
CLIMB_MIN_M = 150.0
# Each quarter of a judged window must gain at least a fifth of its climb (a steady climb
# gains a quarter in each): an altitude step (a barometer recalibrating, GPS altitude
# jumping) gains it all in a minute or two, and one added to a hard but human climb breaks
# this before it lifts the climb over a limit (1,800 m/h for 10 min and a 75 m step stay
# under 2,300 m/h).
CLIMB_PARTS = 4
CLIMB_PART_SHARE = 1 / 5

# Pull-aways from a standstill (rides): a car in town traffic leaves every junction at
# 2-3 m/s², which at 20-40 km/h takes about twice the power a strong rider sprints with for
# a few seconds, and it does so at every junction. A launch counts when it reaches
# LAUNCH_TO_MPS within LAUNCH_WITHIN_S of leaving a stop (under LAUNCH_STOP_MPS), stays above
# 80% of it for LAUNCH_HOLD_S (a GPS slip does not), and needs at least LAUNCH_WKG W/kg over
# 3-8 s (kinetic energy gained less what a descent gave, plus rolling and air resistance):
# a hard sprint for a trained amateur. LAUNCH_COUNT of them within LAUNCH_SPAN_M is a reason
# to flag. No real ride of ours has more than two such launches anywhere.
LAUNCH_STOP_MPS = 1.5
LAUNCH_TO_MPS = 25 / 3.6
LAUNCH_WITHIN_S = 15.0
LAUNCH_HOLD_S = 10.0
LAUNCH_WKG = 8.0
LAUNCH_COUNT = 4
LAUNCH_SPAN_M = 3000.0

# Climbs ridden as with a motor (rides): legs give about the same power on a 3% and a 6% road,
# so speed falls as the road steepens (to about three quarters here, at the same effort); a
# motor that assists up to a set speed holds it. Over the climbing (1-minute gradient between
# ASSIST_GRADE_MIN and ASSIST_GRADE_MAX, moving) of a ride, the steepest quarter's median
# speed against the gentlest quarter's: ASSIST_SPEED_RATIO or more, where the steep quarter is
# at least ASSIST_GRADE_SPREAD times as steep and the ride climbs for ASSIST_MIN_CLIMB_S, is a
# reason to look. Riders push harder on steeper ground, and a short kick is carried up on
# momentum: no real ride of ours with ten minutes of climbing keeps more than 0.92 of its
# speed (over the same two minutes as the gradient), nor more than 0.95 with phone-like
# altitude error added (a 10 m wander over two minutes, which blurs steep and gentle), and a ride that holds the
# same speed for ten minutes of climbing of either kind is flagged for a moderator, short of
# certain (ASSIST_SEVERITY). Only where the steep quarter's speed needs ASSIST_MIN_WKG or more
# (a steady effort for a trained amateur): slower, a rider can keep the pace by pushing a
# little harder, and noisy altitude makes "steep" and "gentle" a matter of chance (a run
# judged as a ride, at 14 km/h, needs 2.8 W/kg; a hike, 2.3), and only at ASSIST_MIN_MPS or
# faster on the steep quarter: assistance holds 20-25 km/h (the EU's pedelecs cut out at
# 25), and a runner's pace, uploaded as a ride, hardly changes with the gradient.
ASSIST_GRADE_MIN = 0.02
ASSIST_GRADE_MAX = 0.15
ASSIST_GRADE_SPREAD = 1.5
ASSIST_SPEED_RATIO = 0.96
ASSIST_MIN_CLIMB_S = 600.0
# Only climbs: a run of such gradients lasting this long (a kick carried up on momentum, or a
# wobble of GPS altitude, is over sooner).
ASSIST_SUSTAINED_S = 120.0
ASSIST_MIN_WKG = 3.0
ASSIST_MIN_MPS = 15 / 3.6
ASSIST_SEVERITY = 0.6

# One climb ridden far harder than the rest (rides): a motor or a tow up one hill. The ride's
# climbs (TOW_GRADE_MIN or steeper over the minute either side, TOW_MIN_S and TOW_MIN_GAIN_M at
# least, no steeper than ASSIST_GRADE_MAX on average), each with the steady power its average
# speed and gradient need: the hardest needing TOW_RATIO times the median of the others or
# more, and TOW_MIN_WKG or more (beyond a strong amateur's best for minutes), among
# TOW_MIN_OTHERS other climbs at least, is a reason to look (ASSIST_SEVERITY). Riders pace
# their climbs alike: in our real rides the hardest climb needs at most 1.3 times the others.
# A climb ridden faster than TOW_MAX_MPS on average is left out (a drag taken in a group's
# shelter or with the wind needs far less than the solo model says), and so is one that does
# not gain TOW_PART_SHARE of its height in every quarter of its time (an altitude step; the
# share is lower than the climbing-rate rule's because a climb's stretch begins and ends up to
# a minute into the level road either side, where the gradient window still reaches it).
TOW_GRADE_MIN = 0.03
TOW_MIN_S = 120.0
TOW_MIN_GAIN_M = 25.0
TOW_RATIO = 1.8
TOW_MIN_WKG = 6.0
TOW_MIN_OTHERS = 3
TOW_MAX_MPS = 30 / 3.6
TOW_PART_SHARE = 0.1
