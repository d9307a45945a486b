"""Escaping for each place user text lands (dashboard.escape), read back by a real browser:
Chromium parses the HTML, runs the scripts and draws the plotly labels, Streamlit's own
renderer draws the Markdown, and every hostile string must come out exactly as written, with
no dialog and no script error."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from urllib.parse import unquote

import plotly.graph_objects as go
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from dashboard import assets, escape, ui
from tests.conftest import need
from tests.dashboard.conftest import HOSTILE, streamlit_server

WRITTEN = list(HOSTILE.values())
EXTRA = ["a & b &amp; &lt;c&gt; &#96;", "line one\nline two", "tab\there", "emoji \U0001f3c3\u200d\u2640\ufe0f",
         "line\u2028separator", "</SCRIPT ><!-- <script>", "Zoë O'Brien-Ünal", "\\`${'\\'}`"]
# What Streamlit's Markdown turns into something else once it has resolved the escapes (an
# icon, its logo, emoji, arrows, a dash, signs, live links), and what Markdown takes for a
# code block or keeps from bolding.
REWRITTEN = ["Tempo -> 5 km >= goal · :material/lock: only you :streamlit: www.example.org",
             "nice -- see http://evil.example/login :material/verified: <- me",
             ":smile: :+1: :tada: :red[red] :blue-background[bg] :small[s] :help[x] :material_lock:",
             "a <-> b <= c ~= d --> e <-- f ---- g ==> h >=< i",
             "https://evil.example WWW.EVIL.EXAMPLE www.x.y mail@evil.example mailto:ann@example.org",
             "    indented code", "\tTabbed", "\ufeffBob Builder\ufeff", "\u200b\u3164"]
EVERYTHING = WRITTEN + EXTRA + REWRITTEN
WORD_JOINER = escape.WORD_JOINER


@pytest.fixture
def page(browser):
    context = browser.new_context()
    pg = context.new_page()
    pg.dialogs, pg.errors = [], []
    pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    yield pg
    assert pg.dialogs == [] and pg.errors == []
    context.close()


def show(pg, body: str) -> None:
    pg.set_content(f"<!doctype html><meta charset='utf-8'><base href='https://tracker.example/'><body>{body}</body>")


def test_html_text_and_attributes_read_back_as_written(page):
    for text in EVERYTHING:
        show(page, f"<p id='t'>{escape.html_text(text)}</p>"
                   f"<a id='a' title=\"{escape.html_attribute(text)}\" data-x='{escape.html_attribute(text)}'>x</a>")
        # The HTML parser turns a lone CR into LF, as in any page; none of these has one.
        assert page.locator("#t").text_content() == text
        assert page.locator("#a").get_attribute("title") == text
        assert page.locator("#a").get_attribute("data-x") == text
        assert page.locator("img, svg, script").count() == 0


def test_html_escaping_leaves_no_markup_and_no_backquote_in_attributes():
    for text in EVERYTHING:
        assert not set("<>\"'") & set(escape.html_text(text))
        assert "`" not in escape.html_attribute(text)
        assert html.unescape(escape.html_attribute(text)) == text


def test_markdown_escapes_every_markup_character_and_keeps_the_text():
    for text in EVERYTHING:
        md = escape.markdown(text)
        unescaped = re.sub(r"\\(.)", r"\1", md, flags=re.S)
        assert unescaped.replace(WORD_JOINER, "").replace("\u2068", "").replace("\u2069", "") == escape.trim(
            re.sub(r"\n|\u2028", " ", text))
        assert not set(re.sub(r"\\.", "", md, flags=re.S)) & set("\\`*_{}[]()#+-.!|<>~$:&="), md
    j = WORD_JOINER
    assert escape.markdown("[tap](javascript:alert(1))") == rf"\[tap\]\(javascript\:{j}alert\(1\)\)"
    assert escape.markdown(":red[alarm] :material/flag:") == rf"\:{j}red\[alarm\] \:{j}material/flag\:{j}"
    assert escape.markdown("a\n\n# b\n===") == rf"a  \# b \={j}\={j}\="  # no heading, no paragraph break


def test_markdown_breaks_what_streamlit_would_rewrite_with_word_joiners():
    j = WORD_JOINER
    assert escape.markdown("5 km -> goal") == rf"5 km \-{j}\> goal"
    assert escape.markdown("<->") == rf"\<{j}\-{j}\>"
    assert escape.markdown("a--b ~= c >= d") == rf"a\-{j}\-b \~{j}\= c \>{j}\= d"
    assert escape.markdown("a-b =x ~y") == r"a\-b \=x \~y"  # nothing Streamlit rewrites: no joiner
    assert escape.markdown("http://x www.y WwW.z ann@host") == rf"http\:{j}//x www{j}\.y WwW{j}\.z ann{j}@host"
    assert escape.markdown(":streamlit:") == rf"\:{j}streamlit\:{j}"


def test_markdown_drops_white_space_at_the_ends_so_no_code_block_starts():
    assert escape.markdown("    indented code") == "indented code"
    assert escape.markdown("\tTabbed \n") == "Tabbed"
    assert escape.markdown("\ufeff\u3000Bob\u00a0\ufeff") == "Bob"  # JavaScript's white space, the BOM included


def test_bold_text_is_trimmed_as_javascript_trims_so_the_asterisks_bold():
    assert ui.strong("\ufeffBob\ufeff") == "**Bob**"
    assert ui.strong(" \ufeff ") == "" and ui.strong(None) == ""
    assert ui.strong("\u200bZed") == "**\u200bZed**"  # a zero-width space is no white space to Markdown


def test_a_name_that_shows_nothing_is_replaced_by_the_username():
    for blank in (None, "", "  ", "\u200b", "\ufeff", "\u202e", "\u3164", "\u2800", "\u200b\u2060\u3164 \u2800\ufe0f"):
        assert ui.who(blank, "ann") == "@ann", repr(blank)
    for name in ("Ann", "\u3164A", "\u202eAnn", "\U0001f3c3", "e\u0301"):
        assert ui.who(name, "ann") == name


def test_a_chart_label_is_cut_between_whole_characters():
    family, flag = "\U0001f469\u200d\U0001f469\u200d\U0001f467", "\U0001f1f8\U0001f1ee"
    assert ui.abbreviate("Ann " + family, 6) == "Ann…"  # not the first woman of the family alone
    assert ui.abbreviate("Ann" + flag * 3, 6) == "Ann" + flag + "…"  # not half a flag
    assert ui.abbreviate("Ann Lee", 7) == "Ann Lee"
    assert ui.abbreviate("Ann Lee", 6) == "Ann L…"


# The texts the Markdown page shows (blank ones get a placeholder on real pages instead).
ON_PAGE = [text for text in EVERYTHING if escape.trim(text)]
_HTML_SPACE = re.compile(r"[ \t\n\r\f\v\x1c-\x1e\x85\u2028\u2029]+")


def reads(text: str) -> str:
    """What a paragraph of ``text`` shows: white space at the ends dropped, line breaks and
    runs of white space as one space (as HTML draws them), reordering text isolated."""
    return escape.isolate(_HTML_SPACE.sub(" ", escape.trim(text)))


@pytest.fixture(scope="module")
def markdown_page(tmp_path_factory):
    """tests/dashboard/markdown_page.py served by Streamlit, showing ``ON_PAGE``."""
    texts = tmp_path_factory.mktemp("markdown") / "texts.json"
    texts.write_text(json.dumps(ON_PAGE), encoding="utf-8")
    with streamlit_server(Path(__file__).with_name("markdown_page.py"), str(texts)) as url:
        yield url


def test_streamlit_shows_escaped_markdown_as_written_with_no_icon_image_link_or_code(page, markdown_page):
    """Each text as a paragraph, in bold, as a caption, in an alert and as a link's label,
    drawn by Streamlit's renderer: the visible text is the text written (the word joiners
    draw nothing), and the only elements are paragraphs and the one bold."""
    page.goto(markdown_page)
    page.get_by_text("All texts shown.").wait_for(timeout=90_000)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')")
    boxes = """k => document.querySelectorAll(`.st-key-text_${k} :is([data-testid='stMarkdownContainer'],
        [data-testid='stCaptionContainer'])`)"""
    # The browser may still be drawing the last elements (page links come last): wait until
    # every container holds its five boxes, or give up and let the assertion below say which.
    try:
        page.wait_for_function(f"n => Array.from({{length: n}}, (_, k) => ({boxes})(k).length)"
                               ".every(count => count >= 5)", arg=len(ON_PAGE), timeout=30_000)
    except PlaywrightTimeout:
        pass
    drawn = page.evaluate(f"""n => Array.from({{length: n}}, (_, k) => Array.from(({boxes})(k),
        box => [box.innerText, Array.from(box.querySelectorAll('*'), e => e.tagName)]))""", len(ON_PAGE))
    for text, places in zip(ON_PAGE, drawn):
        assert len(places) == 5, text[:60]
        for where, (shown, tags) in zip(("paragraph", "bold", "caption", "alert", "link label"), places):
            assert shown.replace(WORD_JOINER, "") == reads(text), (where, text[:60], shown[:120])
            assert tags == (["P", "STRONG"] if where == "bold" else ["P"]), (where, text[:60], tags)


def test_markdown_of_blank_text_is_empty_so_pages_can_show_a_placeholder():
    assert escape.markdown("") == "" and escape.markdown(None) == ""


def test_a_right_to_left_override_is_isolated_so_it_cannot_reverse_what_follows(page):
    rtl = HOSTILE["rtl"]
    assert escape.isolate(rtl) == "\u2068" + rtl + "\u2069"
    assert escape.isolate("plain text") == "plain text"
    # A stray closing isolate in the text would end the wrapper early: one more is opened.
    assert escape.isolate("\u2069\u202eevil") == "\u2068\u2068\u2069\u202eevil\u2069"
    # Isolates the text leaves open are closed after it.
    assert escape.isolate("\u2067abc") == "\u2068\u2067abc\u2069\u2069"

    def after_follows(name: str) -> bool:
        show(page, f"<p style='font:16px monospace'><span id='n'>{escape.html_text(name)}</span>"
                   "<span id='after'> · 5 km</span></p>")
        name_box, after_box = page.locator("#n").bounding_box(), page.locator("#after").bounding_box()
        reversed_after = page.evaluate("""() => {
            const r = document.createRange(); const t = document.getElementById('after').firstChild;
            r.setStart(t, 3); r.setEnd(t, 4); const five = r.getBoundingClientRect();
            r.setStart(t, 5); r.setEnd(t, 6); const k = r.getBoundingClientRect();
            return five.left > k.left; }""")
        return after_box["x"] >= name_box["x"] + name_box["width"] - 1 and not reversed_after

    assert not after_follows(rtl)  # unisolated, the override runs on into " · 5 km"
    assert after_follows(escape.isolate(rtl))


def test_a_javascript_string_literal_reads_back_as_written_inside_a_script(page):
    for text in EVERYTHING:
        literal = escape.js_string(text)
        assert not set("<>&'") & set(literal)
        show(page, f"<script>window.v = {literal};</script>")
        assert page.evaluate("() => window.v") == text


def test_a_template_literal_reads_back_as_written_and_runs_nothing(page):
    for text in EVERYTHING:
        show(page, f"<script>window.v = `{escape.template_literal(text)}`;</script>")
        assert page.evaluate("() => window.v") == text


def test_folium_tooltip_text_shows_as_written_where_leaflet_sets_it_as_html(page):
    for text in EVERYTHING:
        show(page, "<div id='t'></div><script>document.getElementById('t').innerHTML = "
                   f"`<div>{escape.folium_html(text)}</div>`;</script>")
        assert page.locator("#t").text_content() == text
        assert page.locator("#t img, #t svg, #t script").count() == 0


def test_json_for_script_reads_back_as_written_and_hides_its_strings_from_rewriting(page):
    value = {"name": WRITTEN, "nested": [[1.5, -9.25, None, True, "x_0"]], "key_0 {{'k'}}": "v"}
    encoded = escape.json_for_script(value)
    strings_only = re.sub(r'"(\\.|[^"\\])*"', "", encoded)
    assert re.fullmatch(r"[\[\]{}:,0-9.\-a-z]*", strings_only)  # only structure and numbers outside strings
    for pattern in ("<", ">", "&", "`", "_0", "{{", "alert(coords);", "alert("):
        assert pattern not in encoded
    show(page, f"<script>window.v = {encoded};</script>")
    assert page.evaluate("() => window.v") == value


def test_a_plotly_figure_in_a_script_element_reads_back_as_written(page):
    fig = go.Figure(go.Bar(x=list(range(len(EVERYTHING))), y=EVERYTHING, text=EVERYTHING))
    show(page, f"<script>window.spec = {escape.json_text_for_script(fig.to_json())};</script>")
    assert page.evaluate("() => window.spec.data[0].y") == EVERYTHING


def test_plotly_labels_show_as_written(page):
    need(assets.installed(assets.PLOTLY_BASIC), "plotly's basic bundle is not installed (python -m dashboard.assets)")
    labels = [t for t in EVERYTHING if t and "\n" not in t and "\u2028" not in t]
    show(page, "<div id='chart' style='width:900px;height:1200px'></div>")
    page.add_script_tag(path=str(assets.PLOTLY_BASIC.local("package/plotly-basic.min.js")))
    page.evaluate("labels => Plotly.newPlot('chart', [{type: 'bar', orientation: 'h', x: labels.map((_, k) => k + 1), "
                  "y: labels}], {margin: {l: 300}})", [escape.plotly_text(t) for t in labels])
    shown = page.locator("#chart .ytick text").all_text_contents()
    assert sorted(shown) == sorted(escape.isolate(t) for t in labels)
    assert page.locator("#chart .ytick a").count() == 0  # no link made of a label
    # html.escape would have shown a double quote as "&quot;": plotly decodes only a few entities.
    assert escape.plotly_text('say "hi"') == 'say "hi"'


def test_urls_keep_web_links_and_refuse_script_schemes(page):
    refused = ["javascript:alert(1)", " JaVaScRiPt:alert(1)", "java\tscript:alert(1)", "java\nscript:alert(1)",
               "\x01javascript:alert(1)", "data:text/html,<script>alert(1)</script>", "vbscript:msgbox(1)",
               "file:///etc/passwd", "jav&#x09;ascript:alert(1)x:"]
    for href in refused[:-1]:
        assert escape.url(href) == escape.BLOCKED_URL, href
    kept = {"https://example.org/a b?q=\"x\"&r=<y>": "https://example.org/a%20b?q=%22x%22&r=%3Cy%3E",
            "/activity?id=3": "/activity?id=3", "mailto:ann@example.org": "mailto:ann@example.org",
            "HTTP://EXAMPLE.ORG/`": "HTTP://EXAMPLE.ORG/%60"}
    for href, expected in kept.items():
        assert escape.url(href) == expected
    for href in refused + list(kept) + WRITTEN:
        show(page, f"<a id='a' href=\"{escape.html_attribute(escape.url(href))}\">link</a>")
        protocol = page.evaluate("() => document.getElementById('a').protocol")
        assert protocol in ("http:", "https:", "mailto:", "about:"), (href, protocol)


def test_a_url_component_round_trips_and_holds_no_separator():
    for text in EVERYTHING:
        part = escape.url_component(text)
        assert unquote(part) == text and not set("/?#&=:'\"<> ") & set(part)
