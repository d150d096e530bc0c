"""Look at a run's report as a reader would: write it, render it in headless Chromium, print
where the page and its screenshot are (open the PNG; tests/test_report.py checks the same page).

    python benchmarks/report_screenshot.py --db study.duckdb --out report/ [--run N]
        [--size 1600x3000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from matstore.report import write_report  # noqa: E402
from matstore.report.browser import screenshot  # noqa: E402
from matstore.store import Store  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--run", type=int, default=None, help="generation run (default: the latest)")
    ap.add_argument("--size", default="1600x3000", help="browser window WIDTHxHEIGHT in px")
    a = ap.parse_args()
    w, h = (int(v) for v in a.size.lower().split("x"))
    t0 = time.perf_counter()
    index = write_report(Store(a.db), a.out, run_id=a.run)
    t1 = time.perf_counter()
    png = screenshot(index, Path(a.out) / "screenshot.png", (w, h))
    t2 = time.perf_counter()
    print(f"report     {index}  ({t1 - t0:.1f} s)")
    print(f"screenshot {png}  ({w}x{h} px, {t2 - t1:.1f} s)")


if __name__ == "__main__":
    main()
