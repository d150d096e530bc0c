"""Render a report page in headless Chromium: what a reader sees, as a PNG."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from .screens import ReportError

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
WINDOW = (1600, 3000)


def find_browser() -> str | None:
    """The first headless-capable Chromium on PATH, or None."""
    return next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)


def screenshot(page: str | Path, png: str | Path, size: tuple[int, int] = WINDOW,
               timeout: float = 120) -> Path:
    """Screenshot of page (an HTML file) at size (width, height) px into png. A fresh profile
    each time and no background networking: the page's own local files are all it loads."""
    browser = find_browser()
    if browser is None:
        raise ReportError(f"no Chromium found (tried {', '.join(BROWSERS)}); "
                          f"install one, e.g. apt-get install chromium")
    png = Path(png).resolve()
    with tempfile.TemporaryDirectory() as profile:
        cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", f"--user-data-dir={profile}", f"--screenshot={png}",
               f"--window-size={int(size[0])},{int(size[1])}", Path(page).resolve().as_uri()]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0 or not png.exists():
        tail = (res.stderr or "").strip().splitlines()[-1:] or ["no output"]
        raise ReportError(f"{browser} did not write {png} (exit {res.returncode}): {tail[0]}")
    return png
