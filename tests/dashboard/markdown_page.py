"""A Streamlit page that shows user text in each place the dashboard puts it through Markdown,
for tests/dashboard/test_escape.py: ``streamlit run markdown_page.py -- TEXTS.json``.

Each text in the JSON list gets a container keyed ``text_<index>`` holding it as a paragraph
(``ui.plain``), in bold (``ui.strong``), as a caption, in an alert and as a page link's label,
so Streamlit's own renderer (the one in the browser) has the last word on what shows.
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from dashboard import ui  # noqa: E402

texts = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
for k, text in enumerate(texts):
    with st.container(key=f"text_{k}"):
        st.markdown(ui.plain(text))
        st.markdown(ui.strong(text))
        st.caption(ui.plain(text))
        st.warning(ui.plain(text))
        st.page_link("https://tracker.invalid/activity", label=ui.plain(text))
st.markdown("All texts shown.")
