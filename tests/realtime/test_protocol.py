"""The protocol parser alone: valid messages parse, generated junk yields only documented errors."""

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.text import CLIENT_REF_MAX_CHARS, TITLE_MAX_CHARS
from realtime.protocol import ERROR_CODES, Create, Points, ProtocolError, Status, parse

NOW = 1_800_000_000.0


def test_a_points_batch_parses_into_typed_points():
    """Optional fields default to None; the request id is kept."""
    msg = parse(json.dumps({"type": "points", "id": "b1", "activity_id": 7,
                            "points": [{"seq": 0, "t": NOW - 10, "lat": 46.0, "lon": 14.5, "hr": 150}]}), now=NOW)
    assert isinstance(msg, Points) and msg.id == "b1" and msg.activity_id == 7
    assert msg.points[0].hr == 150 and msg.points[0].ele is None


@pytest.mark.parametrize("point,expected", [
    ({"seq": 3, "t": NOW, "lat": 46.5, "lon": 14.5}, (3, NOW, 46.5, 14.5, None, None, None, None)),
    ({"seq": 3, "t": int(NOW), "lat": 46, "lon": 14}, (3, NOW, 46.0, 14.0, None, None, None, None)),
    ({"seq": 3, "t": NOW, "hr": 120, "cad": 80}, (3, NOW, None, None, None, None, 120.0, 80.0)),
    ({"seq": 3, "t": NOW, "lat": 46.5, "lon": 14.5, "ele": 300.5, "acc": 4}, (3, NOW, 46.5, 14.5, 300.5, 4.0, None, None)),
    ({"seq": 3, "t": NOW, "lat": 46.5, "hr": 120}, "invalid_point"),
    ({"seq": 3, "t": NOW, "lat": 46.5, "lon": "14.5"}, "wrong_type"),
    ({"seq": 2**31, "t": NOW, "lat": 46.5, "lon": 14.5}, "invalid_value"),
])
def test_every_point_field_is_read_whatever_else_the_point_holds(point, expected):
    """Ints become floats, optional fields survive without coordinates, and a bad field is named."""
    raw = json.dumps({"type": "points", "activity_id": 1, "points": [point]})
    if isinstance(expected, str):
        with pytest.raises(ProtocolError) as err:
            parse(raw, now=NOW)
        assert err.value.code == expected
        return
    p = parse(raw, now=NOW).points[0]
    assert (p.seq, p.t, p.lat, p.lon, p.ele, p.acc, p.hr, p.cad) == expected
    assert all(v is None or type(v) is float for v in (p.t, p.lat, p.lon, p.ele, p.acc, p.hr, p.cad))


def test_create_and_status_parse():
    """The lifecycle messages carry sport, command and time."""
    assert parse('{"type": "create", "sport": "ride", "client_ref": "abc"}', now=NOW) == \
        Create(None, "ride", None, None, "abc")
    assert parse('{"type": "status", "activity_id": 3, "command": "pause", "at": 1795700000}', now=NOW) == \
        Status(None, 3, "pause", 1795700000.0)


def test_a_status_time_before_2000_or_far_ahead_is_refused():
    for at in (1, -1e12, NOW + 3600):
        with pytest.raises(ProtocolError) as exc:
            parse(json.dumps({"type": "status", "activity_id": 3, "command": "start", "at": at}), now=NOW)
        assert exc.value.code == "invalid_value"


def test_a_client_ref_in_the_phone_apps_namespace_is_refused():
    with pytest.raises(ProtocolError) as exc:
        parse('{"type": "create", "sport": "run", "client_ref": "fixes:3:1796245646"}', now=NOW)
    assert exc.value.code == "invalid_value" and "fixes:" in exc.value.message


def test_a_create_title_longer_than_the_column_is_cut_with_an_ellipsis():
    """Titles are names, not identifiers: a long one is shortened, not refused."""
    msg = parse(json.dumps({"type": "create", "sport": "run", "title": "Long run " * 100}), now=NOW)
    assert len(msg.title) == TITLE_MAX_CHARS and msg.title.endswith("…")
    assert msg.title.startswith("Long run Long run")


def test_a_create_client_ref_longer_than_the_column_is_refused_naming_the_limit():
    """client_ref identifies the activity on the device, so it is never cut."""
    raw = json.dumps({"type": "create", "id": "c1", "sport": "run", "client_ref": "r" * (CLIENT_REF_MAX_CHARS + 1)})
    with pytest.raises(ProtocolError) as err:
        parse(raw, now=NOW)
    assert err.value.code == "invalid_value"
    assert err.value.message == f"'client_ref' is longer than {CLIENT_REF_MAX_CHARS} characters"
    assert err.value.request_id == "c1"


@pytest.mark.parametrize("raw,code", [
    ('{"type": "points", "activity_id": 1, "points": [{"seq": 0, "t": 1e9, "lat": 10}]}', "invalid_point"),
    ('{"type": "points", "activity_id": 1, "points": [{"seq": 0, "t": 1e9, "lat": 1, "lon": 1, "hr": -5}]}',
     "invalid_point"),
    ('{"type": "points", "activity_id": 1, "points": [{"seq": true, "t": 1e9}]}', "wrong_type"),
    ('{"type": "points", "activity_id": 1, "points": [{"seq": 0, "t": 10}]}', "invalid_point"),
    ('{"type": "create", "sport": "run", "v": 2}', "unsupported_version"),
    ('{"type": "create", "sport": "run", "id": [1]}', "wrong_type"),
    ('{"type": "cues", "fields": ["time", "heart"]}', "invalid_value"),
    ('{"type": "cues", "fields": ["time"], "every_km": 0}', "invalid_value"),
    ("\xff\xfe", "bad_json"),
])
def test_specific_bad_messages_get_their_codes(raw, code):
    """Each kind of bad message is named by its code."""
    with pytest.raises(ProtocolError) as err:
        parse(raw, now=NOW)
    assert err.value.code == code


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)
point = st.fixed_dictionaries({}, optional={
    "seq": json_values | st.integers(), "t": json_values | st.floats(), "lat": json_values | st.floats(),
    "lon": json_values | st.floats(), "hr": json_values})
message = st.fixed_dictionaries(
    {"type": st.sampled_from(["create", "status", "points", "feed", "cues", "junk"]) | st.text(max_size=5)},
    optional={"id": json_values, "activity_id": json_values, "sport": json_values, "command": json_values,
              "points": st.lists(point, max_size=5) | json_values, "at": json_values, "fields": json_values,
              "limit": json_values, "cursor": json_values, "v": json_values,
              "title": json_values, "client_ref": json_values, "visibility": json_values})


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.one_of(message.map(json.dumps), st.text(max_size=200), st.binary(max_size=200)))
def test_junk_yields_only_documented_errors(raw):
    """Whatever arrives, parse returns a message or raises ProtocolError with a known code."""
    try:
        msg = parse(raw, now=NOW)
    except ProtocolError as exc:
        assert exc.code in ERROR_CODES
        assert exc.message
        return
    if isinstance(msg, Points):
        for p in msg.points:
            assert math.isfinite(p.t) and p.t <= NOW + 300
            assert p.lat is None or -90 <= p.lat <= 90


@settings(max_examples=300, deadline=None)
@given(title=st.none() | st.text(max_size=400), client_ref=st.none() | st.text(max_size=80))
def test_create_text_fields_fit_their_columns_or_are_refused(title, client_ref):
    """Any title comes out fitting its column; a client_ref is kept exactly or refused with invalid_value."""
    raw = json.dumps({"type": "create", "sport": "run", "title": title, "client_ref": client_ref})
    try:
        msg = parse(raw, now=NOW)
    except ProtocolError as exc:
        assert exc.code == "invalid_value" and exc.message.startswith("'client_ref' ")
        return
    assert msg.client_ref == client_ref
    assert title is None or len(msg.title) <= TITLE_MAX_CHARS
    assert title is None or "\x00" not in msg.title
