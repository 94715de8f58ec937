"""The app's fonts: the bundled DejaVu subsets (:func:`fetalscope.config.bundled_fonts_dir`), served by our own
FastAPI app and named in the Gradio theme, so the page renders the same offline as online.

Gradio's default theme names IBM Plex Sans from its own static folder, whose semi-bold file is a stub of a
few dozen glyphs: Chromium then drew bold capitals from a fallback, as small capitals ("FETᴀL_PLᴀNES_Dʙ").
Here the theme names our families only (regular and bold faces; semi-bold weights resolve to bold), and no
stylesheet is fetched from any other host.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from fetalscope.config import bundled_fonts_dir

FONTS_PATH = "/_fonts"  # URL prefix of the font files (mounted before the UI, which takes "/")
SANS = "Fetalscope Sans"  # CSS family names of the bundled faces (DejaVu Sans / DejaVu Sans Mono subsets)
MONO = "Fetalscope Mono"
FACES = ((SANS, "DejaVuSans-Regular", 400), (SANS, "DejaVuSans-Bold", 700), (MONO, "DejaVuSansMono-Regular", 400))


def font_face_css() -> str:
    """``@font-face`` rules of the bundled families (WOFF2 files under :data:`FONTS_PATH`)."""
    return "\n".join(
        f"@font-face {{ font-family: '{family}'; src: url('{FONTS_PATH}/{stem}.woff2') format('woff2'); "
        f"font-weight: {weight}; font-style: normal; font-display: swap; }}"
        for family, stem, weight in FACES)


def mount_fonts(app: FastAPI) -> None:
    """Serve the bundled font files (and their licence) at :data:`FONTS_PATH`."""
    app.mount(FONTS_PATH, StaticFiles(directory=str(bundled_fonts_dir())), name="fonts")


def theme() -> Any:
    """Gradio's default theme with the bundled families (system fallbacks after them), nothing from Google."""
    import gradio as gr

    return gr.themes.Default(font=[SANS, "DejaVu Sans", "sans-serif"], font_mono=[MONO, "DejaVu Sans Mono",
                                                                                  "monospace"])
