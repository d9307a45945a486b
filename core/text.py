"""Length limits for text from outside (files, device messages, forms) and the one function that cuts it.

SQLite ignores VARCHAR lengths and PostgreSQL refuses values over them, so every string that
reaches a bounded column goes through here first and both databases store the same thing.
The tables size their columns with these limits (and a test checks each migrated column
against them), so they cannot drift from the schema. Titles
and names are cut to fit with an ellipsis (``fit``): a long name in a GPX file is no
reason to refuse a run. Identifiers (a device's ``client_ref``) are refused when too long
(``check_identifier``): a cut identifier would name something else. Comments are free text
the athlete typed and can shorten, so they are refused over ``COMMENT_MAX_CHARS`` rather
than losing their end. Lengths are in characters (code points), as VARCHAR counts them in a
UTF-8 database; a cut never separates an accent, an emoji's modifier or joiner, or half of
a flag from the character it belongs to, and text is cleaned of NUL and other control
characters (PostgreSQL refuses NUL in text), of byte-order marks (U+FEFF, left at the start
of text copied from a file: never meant as text, and invisible) and of unpaired surrogates
(not encodable). ``is_blank`` tells a name that shows nothing, and ``xml_text`` keeps only
what an XML 1.0 document may hold.
"""

from __future__ import annotations

import re
import unicodedata

ELLIPSIS = "…"
TITLE_MAX_CHARS = 200  # activities.title
CLIENT_REF_MAX_CHARS = 64  # activities.client_ref
DEVICE_NAME_MAX_CHARS = 100  # device_tokens.name
# comments.text is unbounded TEXT; a comment is a remark under an activity, not an essay,
# and the feed shows each one in full.
COMMENT_MAX_CHARS = 1000

# C0 and C1 control characters other than tab, line feed and carriage return.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_UNWANTED = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufeff]")  # the controls and the byte-order mark
_SURROGATE = re.compile(r"[\ud800-\udfff]")
# What XML 1.0 forbids in a document: the C0 controls but tab and line breaks, surrogates,
# and U+FFFE and U+FFFF.
_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# Characters drawn with no ink that are not white space or format characters: the Hangul
# fillers, the blank Braille pattern, the combining grapheme joiner, variation selectors and
# the Mongolian ones, and the Khmer inherent vowels. A name made of them looks blank.
_NO_INK = frozenset("\u115f\u1160\u3164\uffa0\u2800\u034f\u17b4\u17b5\u180b\u180c\u180d\u180f"
                    + "".join(map(chr, range(0xFE00, 0xFE10))) + "".join(map(chr, range(0xE0100, 0xE01F0))))
_BLANK_CATEGORIES = {"Zs", "Zl", "Zp", "Cc", "Cf"}  # white space, controls, format characters (bidi, zero widths)
_ZWJ = "\u200d"


class TextRefused(ValueError):
    """Text that cannot be stored as given; the message names the field and the limit."""

    def __init__(self, message: str, field: str, limit: int | None = None):
        super().__init__(message)
        self.field = field
        self.limit = limit


def clean(text: str) -> str:
    """``text`` without control characters (tab and line breaks kept) or byte-order marks, and
    with unpaired surrogates replaced, so that both databases can store it."""
    return _SURROGATE.sub("\ufffd", _UNWANTED.sub("", text))


def is_blank(text: str | None) -> bool:
    """Whether ``text`` shows nothing on a page: empty, or only white space, zero-width and
    other format characters (U+200B, U+FEFF, U+202E, ...) and fillers (U+3164, U+2800, ...)."""
    return all(ch in _NO_INK or unicodedata.category(ch) in _BLANK_CATEGORIES for ch in text or "")


def xml_text(text: str | None) -> str:
    """``text`` without the characters an XML 1.0 document may not hold (NUL, the other C0
    controls but tab and line breaks, unpaired surrogates, U+FFFE and U+FFFF)."""
    return _NOT_XML.sub("", text or "")


def one_line(text: str | None) -> str:
    """``text`` cleaned, with every run of white space (line breaks included) made one space."""
    return " ".join(clean(text or "").split())


def fit(text: str | None, limit: int) -> str:
    """``text`` on one line (see ``one_line``) and cut to at most ``limit`` characters ending in "…"."""
    text = one_line(text)
    if len(text) <= limit:
        return text
    head = text[:_boundary(text, limit - len(ELLIPSIS))].rstrip()
    return head + ELLIPSIS


def check_length(text: str, limit: int, field: str) -> str:
    """``text`` unchanged if it holds at most ``limit`` characters; TextRefused otherwise."""
    if len(text) > limit:
        raise TextRefused(f"{field} is longer than {limit:,} characters", field, limit)
    return text


def check_identifier(text: str, limit: int, field: str) -> str:
    """An identifier unchanged if it fits and holds no control characters; TextRefused otherwise."""
    check_length(text, limit, field)
    if _CONTROL.search(text) or _SURROGATE.search(text) or any(c in text for c in "\t\n\r"):
        raise TextRefused(f"{field} may not hold control characters", field, limit)
    return text


def _boundary(text: str, end: int) -> int:
    """The largest cut at or before ``end`` that leaves every character whole; ``end`` itself
    when a single character sequence is longer than that (any code point boundary stores)."""
    cut = end
    while 0 < cut < len(text) and _joined(text, cut):
        cut -= 1
    return cut if cut > 0 else end


def _joined(text: str, i: int) -> bool:
    """Whether text[i - 1] and text[i] belong to one user-perceived character."""
    before, after = text[i - 1], text[i]
    if before == _ZWJ or after == _ZWJ:
        return True
    if unicodedata.category(after) in ("Mn", "Mc", "Me"):  # accents, variation selectors, keycaps
        return True
    if "\U0001f3fb" <= after <= "\U0001f3ff" or "\U000e0020" <= after <= "\U000e007f":
        return True  # skin tone modifiers; tag characters of subdivision flags
    if _regional(before) and _regional(after):
        # Flags are pairs of regional indicators: the cut splits one if an odd number of
        # indicators runs up to it.
        run = 0
        while i - 1 - run >= 0 and _regional(text[i - 1 - run]):
            run += 1
        return run % 2 == 1
    return False


def _regional(ch: str) -> bool:
    return "\U0001f1e6" <= ch <= "\U0001f1ff"
