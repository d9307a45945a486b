"""Importers: every real file imports, hostile and broken files give a clear error fast."""

import json
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

from core.tracks.formats import load_track
from core.tracks.formats.common import TrackFileError
from core.tracks.formats.gpx import to_gpx

ROOT = Path(__file__).resolve().parents[3]
GPX_HEAD = b'<?xml version="1.0"?><gpx version="1.1" creator="t" xmlns="http://www.topografix.com/GPX/1/1">'


def test_every_real_file_imports(shared_tracks):
    """All 78 recordings import; indoor and multisport files are valid without GPS."""
    files = [p for p in sorted(shared_tracks.glob("*/*")) if p.suffix.lower() in (".gpx", ".tcx", ".fit")]
    assert len(files) == 78
    for path in files:
        track = load_track(path)
        assert len(track) > 0, path.name
    indoor = load_track(shared_tracks / "python-fitparse/sample-activity-indoor-trainer.fit")
    assert indoor.gps_points == 0


def test_fit_and_tcx_of_the_same_race_agree(shared_tracks):
    """The FIT and TCX copies of one 10 km race give the same points."""
    fit = load_track(shared_tracks / "goldencheetah/10kUNLP2014-Garmin15.fit")
    tcx = load_track(shared_tracks / "goldencheetah/10kUNLP2014-Garmin15.tcx")
    assert len(fit) == len(tcx)
    assert abs(fit.lat[100] - tcx.lat[100]) < 1e-6
    assert fit.sport == tcx.sport == "run"


def test_gpx_export_round_trips(shared_tracks, tmp_path):
    """Exported GPX imports back with the same positions and times."""
    track = load_track(shared_tracks / "togeojson/run.gpx")
    out = tmp_path / "out.gpx"
    out.write_text(to_gpx(track))
    again = load_track(out)
    assert len(again) == track.gps_points
    assert again.t[-1] == pytest.approx(track.t[-1])


def test_tcx_export_round_trips_every_timed_point(shared_tracks):
    """A ride whose head unit logged two minutes before it had a fix: the TCX keeps those
    points (a GPX cannot), with positions, heart rate and cadence, under a hostile title."""
    import numpy as np

    from core.tracks.formats.tcx import to_tcx

    track = load_track(shared_tracks / "python-fitparse/2019-02-17-062644-ELEMNT-297E-195-0.fit")
    timed = np.isfinite(track.t)
    assert (timed & np.isnan(track.lat)).sum() > 100
    document = to_tcx(track, "Ride\x00 <b>&\x1b[31m")
    ElementTree.fromstring(document.encode())  # well-formed
    again = load_track("again.tcx", document.encode())
    assert again.sport == "ride" and len(again) == int(timed.sum())
    assert np.allclose(again.t, track.t[timed], atol=1e-3)
    assert np.allclose(again.lat, track.lat[timed], atol=1e-8, equal_nan=True)
    assert np.allclose(again.ele, track.ele[timed], atol=1e-3, equal_nan=True)
    assert np.allclose(again.acc, track.acc[timed], atol=0.01, equal_nan=True)
    assert np.allclose(again.hr, np.round(track.hr[timed]), equal_nan=True)
    assert np.allclose(again.cad, np.round(track.cad[timed]), equal_nan=True)


@pytest.mark.parametrize("name,data,reason", [
    ("empty.gpx", b"", "empty"),
    ("garbage.fit", b"\x0e\x10" + b"\xff" * 5000, "FIT"),
    ("cut.gpx", GPX_HEAD + b'<trk><trkseg><trkpt lat="1" lon="2"><time>2020-01-01T00:00', "GPX"),
    ("bomb.gpx", b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
                 b'<gpx>&lol2;</gpx>', "refused"),
    ("xxe.tcx", b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
                b'<TrainingCenterDatabase>&e;</TrainingCenterDatabase>', "refused"),
    ("notes.txt", b"hello world", "unknown file type"),
])
def test_bad_files_get_a_clear_error(name, data, reason, tmp_path):
    """Truncated, malformed and hostile files raise TrackFileError with a reason."""
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(TrackFileError, match=reason):
        load_track(path)


def test_a_truncated_real_fit_file_is_an_error(shared_tracks, tmp_path):
    """Half a FIT file is reported, not half-imported silently."""
    data = (shared_tracks / "python-fitparse/activity-small-fenix2-run.fit").read_bytes()
    path = tmp_path / "half.fit"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(TrackFileError):
        load_track(path)


def test_a_missing_file_or_a_directory_is_an_error_not_a_crash(tmp_path):
    with pytest.raises(TrackFileError, match="cannot read file"):
        load_track(tmp_path / "missing.gpx")
    with pytest.raises(TrackFileError, match="cannot read file"):
        load_track(tmp_path)


def test_an_oversized_file_is_refused_before_parsing(tmp_path, monkeypatch):
    """A file over TRACKER_MAX_UPLOAD_BYTES is refused with its size."""
    monkeypatch.setenv("TRACKER_MAX_UPLOAD_BYTES", "1000")
    path = tmp_path / "big.gpx"
    path.write_bytes(GPX_HEAD + b" " * 5000 + b"</gpx>")
    with pytest.raises(TrackFileError, match="over the 1000-byte limit"):
        load_track(path)


def test_stats_cli_prints_json_lines_and_fails_on_bad_files(shared_tracks, tmp_path):
    """python -m core stats prints one JSON object per file and exits 1 if one failed."""
    bad = tmp_path / "bad.gpx"
    bad.write_bytes(b"<gpx><trk>")
    good = shared_tracks / "goldencheetah/10kUNLP2014-Garmin15.fit"
    proc = subprocess.run([sys.executable, "-m", "core", "stats", str(good), str(bad)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 1
    first, second = [json.loads(line) for line in proc.stdout.splitlines()]
    for key in ("file", "sport", "distance_m", "moving_time_s", "elapsed_time_s", "avg_pace_s_per_km",
                "max_speed_mps", "elevation_gain_m", "points", "dropped"):
        assert key in first
    assert first["sport"] == "run" and abs(first["distance_m"] - 10010.82) / 10010.82 < 0.01
    assert second["file"] == str(bad) and "GPX" in second["error"]


def test_names_in_a_file_are_read_on_one_line_and_cut_to_their_columns():
    """A GPX name spread over lines reads as one line; a TCX creator longer than a device name
    is cut with an ellipsis (a space before it dropped), and the cut is noted with the length
    the file had."""
    gpx = (GPX_HEAD + b"<metadata><name>\n    Sunday\n    long run\n  </name></metadata>"
           b'<trk><trkseg><trkpt lat="46" lon="14"><time>2023-01-01T08:00:00Z</time></trkpt></trkseg></trk></gpx>')
    track = load_track("named.gpx", gpx)
    assert track.name == "Sunday long run" and "cut_chars" not in track.meta
    creator = "Forerunner " * 50
    tcx = ('<?xml version="1.0"?><TrainingCenterDatabase xmlns="http://www.garmin.com/xmlschemas/'
           'TrainingCenterDatabase/v2"><Activities><Activity Sport="Running"><Lap><Track><Trackpoint>'
           '<Time>2023-01-01T08:00:00Z</Time><Position><LatitudeDegrees>46</LatitudeDegrees>'
           '<LongitudeDegrees>14</LongitudeDegrees></Position></Trackpoint></Track></Lap>'
           f'<Creator><Name>{creator}</Name></Creator></Activity></Activities></TrainingCenterDatabase>')
    track = load_track("long-device.tcx", tcx.encode())
    # 99 characters and the ellipsis, less the space the cut left at the end.
    assert track.device == ("Forerunner " * 9).rstrip() + "…"
    assert track.meta["cut_chars"] == {"device": len(creator)}


def test_gpx_export_of_a_title_with_control_characters_is_well_formed_xml():
    """A title stored before control characters were cleaned (NUL, escape, a form feed) is
    written without them: the file parses, and the name keeps everything else."""
    track = load_track("one.gpx", GPX_HEAD + b'<trk><trkseg><trkpt lat="46" lon="14"><time>2023-01-01T08:00:00Z'
                                  b'</time></trkpt></trkseg></trk></gpx>')
    gpx = to_gpx(track, "Tempo\x00 run\x1b[31m \x0c<b>&\ufffe\ud800 done\t")
    root = ElementTree.fromstring(gpx.encode())
    name = root.find("{http://www.topografix.com/GPX/1/1}trk/{http://www.topografix.com/GPX/1/1}name")
    assert name.text == "Tempo run[31m <b>& done\t"
    assert load_track("again.gpx", gpx.encode()).name == "Tempo run[31m <b>& done"


def test_gpx_times_written_in_lower_case_are_read():
    """RFC 3339 allows "t" and "z" in lower case; some writers use them. Every point keeps its
    time, as with upper case."""
    from core.tracks.formats.gpx import read_gpx

    points = "".join(f'<trkpt lat="46.{k:03d}" lon="14.5"><time>2020-01-01{sep}10:00:{5 * k:02d}{zone}</time></trkpt>'
                     for k, (sep, zone) in enumerate([("t", "z"), ("T", "z"), ("t", "Z"), ("t", "+00:00"),
                                                      ("T", "Z")]))
    data = ('<?xml version="1.0"?><gpx version="1.1" creator="x" xmlns="http://www.topografix.com/GPX/1/1">'
            f"<trk><trkseg>{points}</trkseg></trk></gpx>").encode()
    track = read_gpx(data)
    assert list(track.t - track.t[0]) == [0, 5, 10, 15, 20]
