"""Held-out cheat generators: altered real recordings the anomaly detector is never tuned on.

Each kind takes one clean real recording and changes it the way a cheating athlete does.
The recipes and ranges are chosen apart from the development family, so a detector that
only learned that family's recipes shows it here. Unlike a plain recipe (a stretch at one
constant speed, a whole track's clock scaled, one jump), drives here accelerate, brake and
stop; lifts hide in lost-signal gaps; compression may touch only part of the recording; a
copy is re-sampled and re-dated. Common to every kind: the source's
points with a bad clock (missing, backwards, repeated, a clock glitch) are dropped first;
new fixes are laid at the device's own logging interval (the median step of the source)
along the recorded fixes themselves (interpolated over cumulative distance, so the
device's GPS wiggle comes along) with a little correlated noise of the device's size on
top; new heart rate and cadence values are whole numbers as a device writes them; what
follows an altered stretch is kept as recorded, shifted in time. A recording with fewer
than 60 fixes or under 4 minutes makes nothing.

- ``vehicle`` (run or ride): 2-6 km (run) or 4-12 km (ride) of the route driven at a
  45-85 km/h cruise that wanders by 2-5%, in one to three legs split by 5-40 s junction
  stops; every leg starts and brakes on a cosine (jerk-limited) ramp peaking at
  1.5-3 m/s² up and 2-4 m/s² down. Heart rate relaxes toward 62-88 bpm (time constant
  45-120 s) and climbs back over the first minute after; cadence reads zero.
- ``traffic`` (rides): 1-5 km of the route in stop-and-go town traffic: legs of 100-800 m
  between stops of 10-60 s, cruising at 25-50 km/h (the whole profile held under
  51 km/h, fix-to-fix speeds under 52), cosine ramps peaking at 1.5-3.5 m/s² up and
  2-4 m/s² down; stopped fixes keep being logged with 1-2.5 m of correlated jitter.
  Heart rate either follows the recording at the same place on the route or drifts
  toward 70-95 bpm.
- ``gap_lift`` (runs): the fixes stop, then resume 1.5-10 km further along the route
  (the ends at least 1.5 km apart in a straight line) after 2-20 minutes, never sooner
  than the hidden stretch takes by car (22 m/s plus a minute) nor later than 60% of the
  time the runner needs for it at their own pace (and 80% of what the recording took).
  Heart rate restarts at 75-100 bpm and climbs back to the recorded one.
- ``compressed`` (run or ride): either one contiguous half or third of the recording's
  points sped up 1.25-1.6x, or the whole of it sped up 1.12-1.35x, then resampled back to
  the device's interval (pauses stay pauses, shortened by the same factor).
- ``ride_as_run`` (rides; returned as a run): the ride itself, in 60% of cases resampled
  to a run watch's 1-5 s interval, in 75% with the cadence removed. Skipped when the
  track's name (a caller checks the file name by putting it there) or a text in its meta
  says run or jog, or when it moves at a run's pace (median moving speed under 13 km/h):
  a mislabelled run is no cheat.
- ``teleport`` (run or ride): one of a block of 10-240 s of consecutive fixes displaced
  0.3-3 km (the track then comes back), a position offset that drifts linearly out to
  0.3-3 km and back over 2-15 min, or a cut that drops 0.6-3 km of route in one step
  (ends at least 150 m apart; the rest follows one interval later).
- ``climb_motor`` (rides with elevation): the climb gaining most metres at over 3% average
  grade over at least 1 km without falling 15 m below its highest point so far
  (elevation on a 20 m distance grid, a 180 m running median then a 220 m running mean),
  covered either at a steady 15-30 km/h (slower on its steeper parts) or by a power
  model: the rider's own power (from the climb's recorded moving time) plus 250-400 W of
  motor, 78-95 kg, CdA 0.30-0.40 m², Crr 0.004-0.006, capped at 55 km/h. Heart rate and
  cadence as recorded at the same place (heart rate up to 12 bpm lower). None when
  neither saves 90 s of the recorded moving time.
- ``copy`` (run or ride): another athlete's recording re-uploaded: 2-8% of the points
  cropped from each end, moved 14-365 days later (and up to 3 h either way in the day), its timing stretched by
  a factor of 0.96-1.04, resampled by interpolation to another interval (a 1 s device
  becomes 2-4 s, a coarser one 1-6 s), shifted by a constant 3-8 m with 2-5 m of
  correlated jitter.

``source`` prepares the recording and ``resampling`` lays, splices and resamples fixes; the
kinds live in ``driving`` (vehicle, traffic), ``climbs`` (climb_motor), ``speed``
(compressed, ride_as_run) and ``gaps`` (gap_lift, teleport, copy).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from core.anomaly.heldout_cheats.climbs import climb_motor
from core.anomaly.heldout_cheats.driving import traffic, vehicle
from core.anomaly.heldout_cheats.gaps import copy, gap_lift, teleport
from core.anomaly.heldout_cheats.source import Source, checked, prepare, source_of
from core.anomaly.heldout_cheats.speed import compressed, ride_as_run
from core.tracks.track import Track

KINDS = ("vehicle", "traffic", "gap_lift", "compressed", "ride_as_run", "teleport", "climb_motor", "copy")


def make(kind: str, track: Track, rng: random.Random) -> Track | None:
    """The altered track for ``kind`` made from real recording ``track``; None when this recording
    cannot make that kind (wrong sport, too short, no elevation, no climb...)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    prepared = prepare(track)
    if prepared is None or prepared.sport not in ("run", "ride"):
        return None
    src = source_of(prepared, rng)
    return checked(MAKERS[kind](src, rng))


MAKERS: dict[str, Callable[[Source, random.Random], Track | None]] = {
    "vehicle": vehicle, "traffic": traffic, "gap_lift": gap_lift, "compressed": compressed,
    "ride_as_run": ride_as_run, "teleport": teleport, "climb_motor": climb_motor, "copy": copy,
}
