"""The phone apps' formats parsed into fixes, without a server."""

from __future__ import annotations

import pytest

from realtime.http import formats
from realtime.protocol import ProtocolError

LJUBLJANA = (46.0569, 14.5058)
NOW = 1_795_700_000.0


def test_osmand_params_units_and_times():
    device, fix = formats.osmand_params({"id": "trk_x", "timestamp": "1795699990", "lat": "46.05", "lon": "14.5",
                                         "speed": "10", "bearing": "45", "altitude": "300", "accuracy": "4",
                                         "batt": "55"}, NOW)
    assert device == "trk_x" and fix.t == 1795699990.0
    assert fix.speed_mps == pytest.approx(5.1444, abs=1e-3)  # knots
    assert (fix.ele, fix.acc, fix.bearing, fix.battery) == (300.0, 4.0, 45.0, 55.0)
    _, ms = formats.osmand_params({"id": "a", "timestamp": "1795699990500", "lat": "1", "lon": "2"}, NOW)
    assert ms.t == 1795699990.5  # milliseconds
    _, iso = formats.osmand_params({"id": "a", "timestamp": "2026-11-25T10:00:00Z", "lat": "1", "lon": "2"}, NOW)
    assert iso.t == 1795600800.0
    _, naive = formats.osmand_params({"id": "a", "timestamp": "2026-11-25 10:00:00", "lat": "1", "lon": "2"}, NOW)
    assert naive.t == iso.t  # UTC unless it says otherwise
    _, none = formats.osmand_params({"deviceid": "a", "location": "46.1,14.2"}, NOW)
    assert (none.t, none.lat, none.lon) == (NOW, 46.1, 14.2)


def test_traccar_json_single_and_list():
    loc = {"timestamp": "2026-11-25T10:00:00.250Z", "coords": {"latitude": 46.0, "longitude": 14.0, "speed": -1,
                                                                "heading": -1, "accuracy": 3},
           "is_moving": False, "battery": {"level": 0.42}, "activity": {"type": "in_vehicle"}}
    device, fixes = formats.osmand_json({"device_id": "trk_y", "location": loc}, NOW)
    (fix,) = fixes
    assert device == "trk_y" and fix.t == 1795600800.25
    assert fix.speed_mps is None and fix.bearing is None  # -1: unknown
    assert fix.battery == pytest.approx(42.0) and fix.is_moving is False and fix.motion == "in_vehicle"
    _, many = formats.osmand_json({"device_id": "trk_y", "location": [loc, loc]}, NOW)
    assert len(many) == 2


@pytest.mark.parametrize("data, code", [
    ({"location": {"coords": {"latitude": 91, "longitude": 0}, "timestamp": "2026-11-25T10:00:00Z"}}, "invalid_point"),
    ({"location": {"coords": {"latitude": 1}}}, "missing_field"),
    ({"location": {}}, "missing_field"),
    ({"location": "here"}, "wrong_type"),
    ({"device_id": 5, "location": {}}, "wrong_type"),
    ({}, "missing_field"),
    ([1], "bad_message"),
    ({"location": [{"coords": {"latitude": 1, "longitude": 1}}] * 1001}, "batch_too_large"),
    ({"location": {"coords": {"latitude": True, "longitude": 1}}}, "wrong_type"),
    ({"location": {"coords": {"latitude": 1, "longitude": 1}, "timestamp": "1999-01-01T00:00:00Z"}}, "invalid_point"),
])
def test_traccar_json_refusals(data, code):
    with pytest.raises(ProtocolError) as exc:
        formats.osmand_json(data, NOW)
    assert exc.value.code == code


def test_owntracks():
    fix = formats.owntracks({"_type": "location", "lat": 46.0, "lon": 14.0, "tst": 1795699990, "vel": 36,
                             "acc": 5, "alt": 250, "cog": 270, "batt": 80, "tid": "ab"}, NOW)
    assert fix.t == 1795699990.0 and fix.speed_mps == pytest.approx(10.0) and fix.bearing == 270.0
    assert formats.owntracks({"_type": "transition", "event": "enter"}, NOW) is None
    for bad, code in (({"lat": 1}, "bad_message"), ({"_type": "location", "lat": 1, "lon": 2}, "missing_field"),
                      ({"_type": "location", "lat": 1, "lon": 200, "tst": 1795699990}, "invalid_point"),
                      ({"_type": "location", "lat": "x", "lon": 2, "tst": 1795699990}, "wrong_type")):
        with pytest.raises(ProtocolError) as exc:
            formats.owntracks(bad, NOW)
        assert exc.value.code == code, bad


def test_a_unix_time_with_an_exponent_is_a_number():
    _, fix = formats.osmand_params({"id": "a", "timestamp": "1795699990e-0", "lat": "1", "lon": "2"}, NOW)
    assert fix.t == 1795699990.0
