"""A PNG of the page in headless Chromium (``conformance report --screenshot``)."""
from __future__ import annotations

from pathlib import Path

# Headless Chromium with no network: the report must render from disk alone.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def find_chromium():
    import shutil

    for candidate in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(candidate)
        if path:
            return path
    return None


def screenshot(html_path, png_path, size=(1400, 3000), timeout=180) -> str:
    """Render ``html_path`` in headless Chromium to ``png_path``; returns why not when it cannot."""
    import subprocess
    import tempfile

    browser = find_chromium()
    if browser is None:
        return "no chromium on PATH (apt-get install chromium)"
    with tempfile.TemporaryDirectory(prefix="report-chromium-") as profile:
        result = subprocess.run([browser, *CHROMIUM_FLAGS, "--user-data-dir=%s" % profile,
                                 "--screenshot=%s" % Path(png_path).resolve(), "--window-size=%d,%d" % size,
                                 Path(html_path).resolve().as_uri()], capture_output=True, text=True,
                                timeout=timeout)
    if not Path(png_path).is_file():
        return "chromium wrote no screenshot: %s" % result.stderr[-500:]
    return ""
