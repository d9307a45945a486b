"""Over-long text from files, device messages and forms: cut with an ellipsis or refused, the same on
SQLite and PostgreSQL, and never cut inside a character."""

from __future__ import annotations

import json
import unicodedata
from datetime import UTC, datetime
from xml.sax.saxutils import escape, quoteattr

import pytest
from sqlalchemy import select

from core.accounts.tables import DeviceToken
from core.accounts.tokens import create_device_token
from core.accounts.users import create_user
from core.activities.imports import record_track
from core.activities.lifecycle import ActivityError, create_activity, edit_activity
from core.activities.tables import Activity
from core.social.comments import SocialError, add_comment
from core.social.tables import Comment
from core.text import (
    CLIENT_REF_MAX_CHARS,
    COMMENT_MAX_CHARS,
    DEVICE_NAME_MAX_CHARS,
    TITLE_MAX_CHARS,
    TextRefused,
    check_identifier,
    clean,
    fit,
    is_blank,
    xml_text,
)
from core.tracks.formats import load_track
from realtime.protocol import Create, ProtocolError, parse

T0 = 1_700_000_000.0
RUNNER = "\U0001f3c3"  # 🏃, four bytes in UTF-8
ACCENTED_E = "e\u0301"  # e and a combining acute accent: one character on screen, two code points
FAMILY = "\U0001f469\u200d\U0001f469\u200d\U0001f467"  # 👩‍👩‍👧, joined by zero-width joiners
THUMBS_UP_MEDIUM = "\U0001f44d\U0001f3fd"  # 👍🏽, a skin tone modifier
FLAG_SI = "\U0001f1f8\U0001f1ee"  # 🇸🇮, two regional indicators

# Over-long values of every kind: plain ASCII, four-byte emoji, combining accents, joined
# emoji, modifiers, flags (starting one code point in, so a naive cut would split a pair).
LONG_TEXTS = {
    "ascii": "x" * 1000,
    "emoji": RUNNER * 1000,
    "combining": ACCENTED_E * 500,
    "joined": FAMILY * 200,
    "modifier": THUMBS_UP_MEDIUM * 300,
    "flags": "a" + FLAG_SI * 300,
}


def stored(session, column, row_id):
    """A column's value as the database returns it, not as the session remembers it."""
    session.flush()
    session.expire_all()
    return session.scalar(select(column).where(column.class_.id == row_id))


def assert_whole_characters(value: str, original: str) -> None:
    """A cut value is a prefix of the original made of whole characters, then the ellipsis."""
    assert value.endswith("…")
    head = value[:-1]
    assert original.startswith(head)
    rest = original[len(head):]
    assert unicodedata.category(rest[0]) not in ("Mn", "Mc", "Me")
    assert rest[0] != "\u200d" and head[-1:] != "\u200d"
    assert not "\U0001f3fb" <= rest[0] <= "\U0001f3ff"
    flags = sum(1 for c in head if "\U0001f1e6" <= c <= "\U0001f1ff")
    assert flags % 2 == 0
    value.encode("utf-8")  # no unpaired surrogates


def gpx(name: str, creator: str = "watch") -> bytes:
    """A GPX run of 30 points at 3 m/s with this <name> and creator."""
    points = "".join(
        f'<trkpt lat="{46.05 + i * 15 * 3.0 / 111_180:.6f}" lon="14.5">'
        f"<time>{datetime.fromtimestamp(T0 + i * 15, tz=UTC).isoformat()}</time></trkpt>"
        for i in range(30))
    return (f'<?xml version="1.0" encoding="UTF-8"?><gpx version="1.1" creator={quoteattr(creator)} '
            f'xmlns="http://www.topografix.com/GPX/1/1"><metadata><name>{escape(name)}</name></metadata>'
            f"<trk><type>running</type><trkseg>{points}</trkseg></trk></gpx>").encode()


@pytest.fixture
def athlete(session):
    return create_user(session, "limits_1", "Limits One")


@pytest.mark.parametrize("kind", LONG_TEXTS)
def test_fit_cuts_to_the_limit_with_an_ellipsis_between_whole_characters(kind):
    """Whatever the text holds, the cut fits the limit and keeps every character whole."""
    original = LONG_TEXTS[kind]
    value = fit(original, TITLE_MAX_CHARS)
    assert len(value) <= TITLE_MAX_CHARS
    assert_whole_characters(value, original)


def test_fit_fills_the_column_exactly_when_nothing_joins_at_the_cut():
    """Plain text and single emoji are cut to exactly the limit."""
    assert fit("x" * 1000, 200) == "x" * 199 + "…"
    assert fit(RUNNER * 1000, 200) == RUNNER * 199 + "…"


def test_fit_leaves_short_text_alone_but_on_one_line_and_without_control_characters():
    """A name that fits comes back whole; line breaks become spaces; NUL and surrogates go."""
    assert fit("Morning run", 200) == "Morning run"
    assert fit("  Morning\n\t run \r\n", 200) == "Morning run"
    assert fit("Morning\x00 run\x07", 200) == "Morning run"
    assert fit("lone \ud800 surrogate", 200) == "lone \ufffd surrogate"
    assert fit(None, 200) == ""
    assert fit("x" * 200, 200) == "x" * 200


def test_a_byte_order_mark_is_cleaned_away_wherever_it_stands():
    """U+FEFF is never meant as text: it goes from the ends and from inside, so a name of
    nothing else is blank and gets the default."""
    assert clean("\ufeffBob\ufeff Lee\ufeff") == "Bob Lee"
    assert fit("\ufeff Bob \ufeff", 200) == "Bob"
    assert fit("\ufeff", 200) == ""


def test_a_name_of_invisible_characters_only_is_blank():
    """Zero-width and bidi format characters, fillers and the blank Braille pattern show nothing."""
    for blank in (None, "", " \t\n", "\u200b", "\ufeff", "\u202e", "\u2060", "\u3164", "\u115f\u1160\uffa0",
                  "\u2800", "\u00ad", "\u034f\ufe0f\U000e0100", "\u200b\u3000\u2800\u202e"):
        assert is_blank(blank), repr(blank)
    for shown in ("a", "\u3164a", ".", "\u202eabc", RUNNER, FLAG_SI, ACCENTED_E, "\u0301", "\ue000"):
        assert not is_blank(shown), repr(shown)


def test_xml_text_keeps_everything_an_xml_document_may_hold():
    """Controls but tab and line breaks, surrogates and U+FFFE/U+FFFF go; the rest stays."""
    assert xml_text("a\x00b\x01c\x1bd\x7fe\tf\ng\rh") == "abcd\x7fe\tf\ng\rh"
    assert xml_text("lone \ud800 \ufffe\uffff end") == "lone   end"
    assert xml_text(FAMILY + " \u2028 ü") == FAMILY + " \u2028 ü"
    assert xml_text(None) == ""


def test_identifiers_are_refused_not_cut():
    """An identifier over its limit or holding control characters is refused, naming field and limit."""
    assert check_identifier("a" * 64, 64, "client_ref") == "a" * 64
    with pytest.raises(TextRefused, match="client_ref is longer than 64 characters"):
        check_identifier("a" * 65, 64, "client_ref")
    with pytest.raises(TextRefused, match="client_ref may not hold control characters"):
        check_identifier("ab\x00cd", 64, "client_ref")


@pytest.mark.parametrize("kind", LONG_TEXTS)
def test_an_over_long_title_on_create_is_stored_cut(session, athlete, kind):
    """create_activity stores the same cut title on both databases."""
    activity = create_activity(session, athlete, "run", title=LONG_TEXTS[kind])
    title = stored(session, Activity.title, activity.id)
    assert title == fit(LONG_TEXTS[kind], TITLE_MAX_CHARS)
    assert len(title) <= TITLE_MAX_CHARS


def test_a_title_of_nul_and_white_space_only_gets_the_default(session, athlete):
    """Nothing printable left after cleaning means the sport's default title."""
    activity = create_activity(session, athlete, "ride", title="\x00 \n\t")
    assert stored(session, Activity.title, activity.id) == "Ride"


@pytest.mark.parametrize("kind", ["ascii", "emoji", "combining"])
def test_an_over_long_title_on_edit_is_stored_cut(session, athlete, kind):
    """Editing a title to something longer than the column stores it cut."""
    activity = create_activity(session, athlete, "run", title="Morning run")
    edit_activity(session, activity, title=LONG_TEXTS[kind])
    title = stored(session, Activity.title, activity.id)
    assert title == fit(LONG_TEXTS[kind], TITLE_MAX_CHARS)
    assert_whole_characters(title, LONG_TEXTS[kind])


@pytest.mark.parametrize("kind", ["ascii", "emoji", "combining", "flags"])
def test_a_gpx_whose_name_is_1000_characters_imports_with_the_title_cut(session, athlete, kind):
    """The upload path (read the file, record the track) stores the cut name and notes the cut."""
    name = LONG_TEXTS[kind][:1000]
    track = load_track("long.gpx", gpx(name, creator="c" * 500))
    assert len(track.name) <= TITLE_MAX_CHARS and len(track.device) <= DEVICE_NAME_MAX_CHARS
    activity = record_track(session, athlete, track, title=track.name or None, source="upload")
    title = stored(session, Activity.title, activity.id)
    assert title == fit(name, TITLE_MAX_CHARS)
    assert_whole_characters(title, name)
    summary = stored(session, Activity.summary, activity.id)
    assert summary["cut_chars"] == {"name": len(name), "device": 500}
    assert summary["distance_m"] > 0


def test_a_gpx_with_a_short_name_is_imported_as_written_and_notes_no_cut(session, athlete):
    activity = record_track(session, athlete, load_track("short.gpx", gpx("Sunday long run")))
    assert stored(session, Activity.title, activity.id) == "Sunday long run"
    assert "cut_chars" not in stored(session, Activity.summary, activity.id)


def test_a_comment_up_to_the_limit_is_stored_whole_and_a_longer_one_is_refused(session, athlete):
    """Comments are refused over COMMENT_MAX_CHARS (the athlete can shorten them), never cut."""
    activity = create_activity(session, athlete, "run", title="Morning run")
    text = (RUNNER + ACCENTED_E) * (COMMENT_MAX_CHARS // 3) + "!"
    assert len(text) == COMMENT_MAX_CHARS
    comment = add_comment(session, athlete, activity.id, text)
    assert stored(session, Comment.text, comment.id) == text
    with pytest.raises(SocialError, match=f"longer than {COMMENT_MAX_CHARS:,} characters"):
        add_comment(session, athlete, activity.id, "x" * (COMMENT_MAX_CHARS + 1))
    with pytest.raises(SocialError, match=f"longer than {COMMENT_MAX_CHARS:,} characters"):
        add_comment(session, athlete, activity.id, RUNNER * 2000)


def test_a_comment_keeps_its_line_breaks_and_loses_nul(session, athlete):
    """NUL, which PostgreSQL refuses in text, is taken out; line breaks stay."""
    activity = create_activity(session, athlete, "run", title="Morning run")
    comment = add_comment(session, athlete, activity.id, "Great\x00 run!\nSee you Sunday")
    assert stored(session, Comment.text, comment.id) == "Great run!\nSee you Sunday"


@pytest.mark.parametrize("kind", ["ascii", "emoji", "combining"])
def test_an_over_long_device_token_name_is_stored_within_its_column(session, athlete, kind):
    """A device name from the settings form or the command line fits the column on both databases."""
    row, _ = create_device_token(session, athlete, LONG_TEXTS[kind])
    name = stored(session, DeviceToken.name, row.id)
    assert 0 < len(name) <= DEVICE_NAME_MAX_CHARS
    assert LONG_TEXTS[kind].startswith(name.rstrip("…"))


def test_a_client_ref_up_to_the_limit_is_stored_and_a_longer_one_is_refused(session, athlete):
    """client_ref identifies the activity to its device: refused rather than cut."""
    ref = "r" * CLIENT_REF_MAX_CHARS
    activity = create_activity(session, athlete, "run", client_ref=ref)
    assert stored(session, Activity.client_ref, activity.id) == ref
    with pytest.raises(ActivityError, match=f"client_ref is longer than {CLIENT_REF_MAX_CHARS} characters") as err:
        create_activity(session, athlete, "run", client_ref=ref + "r")
    assert err.value.code == "invalid_value"
    with pytest.raises(ActivityError, match="control characters"):
        create_activity(session, athlete, "run", client_ref="ref\x00")


def test_a_websocket_create_with_an_over_long_title_is_stored_cut(session, athlete):
    """A create message's title is cut while parsing and stored the same on both databases."""
    title = (RUNNER + FAMILY + ACCENTED_E) * 300
    msg = parse(json.dumps({"type": "create", "id": 1, "sport": "run", "title": title,
                            "client_ref": "c" * CLIENT_REF_MAX_CHARS}))
    assert isinstance(msg, Create) and len(msg.title) <= TITLE_MAX_CHARS
    activity = create_activity(session, athlete, msg.sport, title=msg.title, client_ref=msg.client_ref)
    stored_title = stored(session, Activity.title, activity.id)
    assert stored_title == fit(title, TITLE_MAX_CHARS)
    assert_whole_characters(stored_title, title)
    assert stored(session, Activity.client_ref, activity.id) == "c" * CLIENT_REF_MAX_CHARS


@pytest.mark.parametrize("client_ref,problem", [
    ("c" * (CLIENT_REF_MAX_CHARS + 1), f"'client_ref' is longer than {CLIENT_REF_MAX_CHARS} characters"),
    (RUNNER * (CLIENT_REF_MAX_CHARS + 1), f"'client_ref' is longer than {CLIENT_REF_MAX_CHARS} characters"),
    ("ref\u0000", "'client_ref' may not hold control characters"),
])
def test_a_websocket_create_with_a_bad_client_ref_is_refused(client_ref, problem):
    """The device hears invalid_value with the field and the limit, before anything is stored."""
    with pytest.raises(ProtocolError) as err:
        parse(json.dumps({"type": "create", "id": 7, "sport": "run", "client_ref": client_ref}))
    assert (err.value.code, err.value.message, err.value.request_id) == ("invalid_value", problem, 7)


def test_the_limits_are_the_lengths_of_the_migrated_columns(engine):
    """The tables are sized from core.text's limits; the migrations must agree with them."""
    from sqlalchemy import inspect

    columns = {(table, c["name"]): c["type"] for table in ("activities", "device_tokens")
               for c in inspect(engine).get_columns(table)}
    assert columns[("activities", "title")].length == TITLE_MAX_CHARS
    assert columns[("activities", "client_ref")].length == CLIENT_REF_MAX_CHARS
    assert columns[("device_tokens", "name")].length == DEVICE_NAME_MAX_CHARS
