"""The /report page rendered by a real headless Chromium (Debian's ``chromium``)."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
from typing import Any

import numpy as np

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _chromium(url: str, work: pathlib.Path, *extra: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium")
    assert binary is not None, "Debian's chromium package is missing: run `make system-deps`"
    profile = work / f"chromium-profile-{len(list(work.iterdir()))}"
    return subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, url],
        capture_output=True,
        text=True,
        check=False,
        timeout=90,
        cwd=work,
    )


def test_the_report_renders_worst_features_first_with_histograms_in_a_browser(
    monitor_factory: Any, make_columns: Any, make_body: Any, tmp_path: pathlib.Path
) -> None:
    monitor = monitor_factory()
    rng = np.random.default_rng(9)
    data = make_columns(rng, 2_000, shifted=True)
    for start in range(0, 2_000, 500):
        assert monitor.post("/v1/rows", make_body(data, start, start + 500, rng)).status_code == 202
    screenshot = tmp_path / "report.png"

    dom = _chromium(monitor.url + "/report", tmp_path, "--dump-dom")
    shot = _chromium(
        monitor.url + "/report", tmp_path, f"--screenshot={screenshot}", "--window-size=1280,2000"
    )

    assert dom.returncode == 0, dom.stderr[-2000:]
    page = dom.stdout
    assert page.count("<svg") == 2 * 5  # 3 features + prediction label and score, two charts each
    headings = [page.index(f"<h3>{name} ") for name in ("income", "purpose", "age")]
    assert headings[2] > max(headings[:2])  # the unshifted feature comes after the drifting ones
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert screenshot.stat().st_size > 20_000  # a rendered page, not a blank one
