"""The bundled fonts as the server hands them to browsers: every face the page names is served from our own
app, is a complete font for what fetalscope writes (not a stub of a few glyphs like Gradio's semi-bold IBM
Plex file), and travels with its licence."""

from __future__ import annotations

import io
import re

import pytest

from fetalscope.serve.fonts import FONTS_PATH, font_face_css

WRITTEN = "".join(chr(c) for c in range(0x20, 0x7F)) + "µ±≥≤×°·–—…“”•⚠√≈"


def test_every_face_in_the_css_is_served_and_complete(client):
    from fontTools.ttLib import TTFont

    urls = re.findall(r"url\('([^']+)'\)", font_face_css())
    assert len(urls) == 3 and all(u.startswith(FONTS_PATH + "/") for u in urls)
    for url in urls:
        answer = client.get(url)
        assert answer.status_code == 200, url
        assert answer.headers["content-type"] == "font/woff2"
        cmap = TTFont(io.BytesIO(answer.content)).getBestCmap()
        missing = [ch for ch in WRITTEN if ord(ch) not in cmap]
        assert not missing, f"{url} lacks {missing}"
        assert len(answer.content) < 80_000  # a subset, kept small
    licence = client.get(FONTS_PATH + "/LICENSE-DejaVu.txt")
    assert licence.status_code == 200 and "Bitstream Vera" in licence.text


@pytest.mark.parametrize("path", ["/_fonts/../config.py", "/_fonts/%2e%2e/config.py", "/_fonts/nope.woff2"])
def test_font_route_serves_nothing_else(client, path):
    assert client.get(path).status_code == 404
