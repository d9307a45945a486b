"""User-written text made safe for the place it lands: one function per context.

Names, titles, comments and notes reach HTML (tables, ``st.html``), HTML attributes, Streamlit
Markdown (titles, captions, link labels), JavaScript string literals, template literals (folium
writes tooltip and popup text into backquoted strings), JSON inside a ``<script>`` (map data,
plotly figures), plotly's label markup and URLs. Each has its own rules: HTML escaping leaves
backquotes and ``${`` alone, a JSON string can still close the script element around it, a
link may say ``javascript:``, and a right-to-left override in a name would reverse the rest of
its line. Nothing here drops what people wrote: once the browser has read it, the text is the
one written (Markdown alone shows a line break as a space and drops white space at the ends,
as a page would anyway); the tests read every function's output back in Chromium
(tests/dashboard/test_escape.py).

Backslashes are not enough for Streamlit's Markdown. Its renderer resolves the escapes and then
rewrites the plain text it is left with: ``:material/lock:`` becomes an icon, ``:streamlit:``
its logo, ``:smile:`` an emoji, ``->`` ``<-`` ``<->`` ``--`` ``>=`` ``<=`` ``~=`` arrows, a dash,
≥ ≤ ≈, and ``http://…``, ``www.…`` and ``name@host`` live links. So ``markdown`` also breaks
each of those patterns with U+2060 WORD JOINER, which draws nothing and does not let a line
break there: after every ``:``, between two characters of ``-<>~=`` whose second is one of
``-<>=``, inside ``www.`` and before ``@``. The text reads exactly as written.
"""

from __future__ import annotations

import html
import json
import re
import unicodedata
from urllib.parse import quote

# Characters Markdown (CommonMark, GitHub's extensions and Streamlit's own: :material/x:,
# :red[...], $math$) gives a meaning to; each is shown literally after a backslash.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:&=])")
_LINE_BREAKS = re.compile(r"\r\n|[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]")
# What Streamlit rewrites after the escapes are resolved (see the module's docstring), and
# where a word joiner breaks it.
WORD_JOINER = "\u2060"
_REWRITTEN = re.compile(r":|[-<>~=](?=[-<>=])|www(?=\.)|(?=@)", re.IGNORECASE)
# White space as JavaScript's \s (and so Streamlit's Markdown) reads it, Python's besides:
# Python's str.strip keeps U+FEFF, which JavaScript takes for a space.
_EDGE_SPACE = re.compile(r"^[\s\ufeff]+|[\s\ufeff]+$")

# Bidirectional classes that reorder text around them: right-to-left letters and the
# explicit embeddings, overrides and isolates.
_BIDI_REORDERING = {"R", "AL", "RLE", "RLO", "LRE", "LRO", "PDF", "RLI", "LRI", "FSI", "PDI"}
_ISOLATE_OPENERS = {"\u2066", "\u2067", "\u2068"}  # LRI, RLI, FSI
_FSI, _PDI = "\u2068", "\u2069"

# In a <script>, "</script" ends the element and "<!--" changes how it is parsed, whatever
# JavaScript quotes they sit in; U+2028 and U+2029 end a line in older engines.
_SCRIPT_UNSAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_SCRIPT_UNSAFE_RE = re.compile("[<>&\u2028\u2029]")

_TEMPLATE_UNSAFE = {"\\": "\\\\", "`": "\\`", "$": "\\$", "<": "\\x3C", ">": "\\x3E",
                    "\u2028": "\\u2028", "\u2029": "\\u2029"}
_TEMPLATE_UNSAFE_RE = re.compile(r"[\\`$<>\u2028\u2029]")

# What a string in map data may hold as itself; anything else is written as a \u escape.
_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ")

SAFE_URL_SCHEMES = ("http", "https", "mailto")
BLOCKED_URL = "about:blank"
_URL_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*):")
_URL_IGNORED = re.compile(r"[\x00-\x20\x7f]")


def _text(value) -> str:
    return "" if value is None else str(value)


def html_text(text) -> str:
    """Text for an HTML element's content: ``& < > " '`` become character references."""
    return html.escape(_text(text), quote=True)


def html_attribute(text) -> str:
    """Text for a quoted HTML attribute value (a URL goes through ``url`` first): as
    ``html_text``, and the backquote too, which old parsers took for a quote."""
    return html_text(text).replace("`", "&#96;")


def isolate(text) -> str:
    """Text that reorders (right-to-left letters, bidi overrides) wrapped in a first-strong
    isolate, so it cannot reverse what follows it on the line; other text unchanged.

    A stray pop-directional-isolate in the text would close the wrapper early, so one more
    isolate is opened for each, and every isolate the text leaves open is closed after it.
    """
    text = _text(text)
    if not any(unicodedata.bidirectional(ch) in _BIDI_REORDERING for ch in text):
        return text
    depth = stray = 0
    for ch in text:
        if ch in _ISOLATE_OPENERS:
            depth += 1
        elif ch == _PDI:
            if depth:
                depth -= 1
            else:
                stray += 1
    return _FSI * (1 + stray) + text + _PDI * (1 + depth)


def markdown(text) -> str:
    """Text for Streamlit Markdown (``st.markdown``, titles, captions, link labels) that shows
    literally: markup characters escaped, what Streamlit would still turn into icons, arrows
    and links broken with word joiners, line breaks as spaces (a break could start a heading or
    a list), white space at the ends dropped (four leading spaces or a tab start a code block,
    and a page shows none there anyway), reordering text isolated."""
    flat = trim(_LINE_BREAKS.sub(" ", _text(text)))
    joined = _REWRITTEN.sub(lambda m: m.group() + WORD_JOINER, flat)
    return isolate(_MARKDOWN_SPECIAL.sub(r"\\\1", joined))


def trim(text) -> str:
    """``text`` without the white space at its ends as JavaScript reads it (U+FEFF included),
    so that Markdown's ``**`` around it makes bold rather than two literal asterisks."""
    return _EDGE_SPACE.sub("", _text(text))


def js_string(text) -> str:
    """A JavaScript string literal, quotes included, that is also safe inside a ``<script>``
    element (in an HTML attribute, put it through ``html_attribute`` as well)."""
    return _script_safe(json.dumps(_text(text), ensure_ascii=True).replace("'", "\\u0027"))


def template_literal(text) -> str:
    """Text for inside a JavaScript template literal (between backquotes, as folium writes
    tooltips): backslash, backquote and ``$`` (so no ``${...}``) escaped, and ``<``/``>`` as
    JavaScript escapes so the script element cannot be closed from inside."""
    return _TEMPLATE_UNSAFE_RE.sub(lambda m: _TEMPLATE_UNSAFE[m.group()], _text(text))


def folium_html(text) -> str:
    """Text for a folium tooltip or popup: HTML-escaped (Leaflet sets it as HTML), then made
    safe for the template literal folium writes it into."""
    return template_literal(html_text(text))


def json_for_script(value) -> str:
    """``value`` (strings, numbers, lists, dicts) as JSON to write inside a ``<script>`` (data
    for a map): in strings every character but ASCII letters, digits and spaces is a \\u
    escape. Nothing in them can end the script then, and no rewriting of the script's text
    can reach into them (streamlit-folium renames ``_0``-style suffixes, drops
    ``alert(coords);`` and resolves ``{{'name'}}`` anywhere in a map's script)."""
    if isinstance(value, str):
        return '"' + "".join(ch if ch in _PLAIN else _unicode_escape(ch) for ch in value) + '"'
    if isinstance(value, dict):
        return "{" + ",".join(json_for_script(str(k)) + ":" + json_for_script(v) for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(json_for_script(v) for v in value) + "]"
    return json.dumps(value)  # numbers, booleans, None; anything else is a TypeError



def _unicode_escape(ch: str) -> str:
    """One character as JavaScript \\u escapes (a UTF-16 surrogate pair beyond U+FFFF)."""
    units = ch.encode("utf-16-be", "surrogatepass")
    return "".join(f"\\u{units[k]:02x}{units[k + 1]:02x}" for k in range(0, len(units), 2))


def json_text_for_script(encoded: str) -> str:
    """Already-encoded JSON (a plotly figure's ``to_json()``) made safe inside a ``<script>``.
    These characters can only occur inside JSON strings, where their escapes mean the same."""
    return _script_safe(encoded)


def _script_safe(code: str) -> str:
    return _SCRIPT_UNSAFE_RE.sub(lambda m: _SCRIPT_UNSAFE[m.group()], code)


def url(href) -> str:
    """A link target for an ``href`` or ``src``: http, https, mailto or a relative address,
    percent-encoded where a URL may not hold the character; any other scheme (``javascript:``,
    ``data:``, ``vbscript:``) gives ``about:blank``. Put the result in the attribute through
    ``html_attribute``."""
    href = _text(href).strip()
    # Read the scheme as a browser would, after dropping the tabs and line breaks it ignores
    # ("java\tscript:" is "javascript:"). Dropping spaces and every control character too
    # errs on the side of refusing.
    scheme = _URL_SCHEME.match(_URL_IGNORED.sub("", href))
    if scheme and scheme.group(1).lower() not in SAFE_URL_SCHEMES:
        return BLOCKED_URL
    return quote(href, safe="/:?#[]@!$&'()*+,;=%~-._")


def url_component(text) -> str:
    """Text for one part of a URL (a path segment or a query value): everything but
    letters, digits and ``-._~`` percent-encoded."""
    return quote(_text(text), safe="")


def plotly_text(text) -> str:
    """Text for a plotly label, title or hover text. Plotly reads a few HTML tags in them
    (``<b>``, ``<a href>``, ``<br>``) and decodes ``&amp; &lt; &gt;`` and numeric references,
    but not ``&quot;``: so only ``& < >`` are escaped, and reordering text is isolated."""
    escaped = _text(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return isolate(escaped)
