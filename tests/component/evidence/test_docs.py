"""`mlsteward docs` offline from a real artifact: content checked against the artifact, HTML rendered
by a real headless Chromium (Debian's ``chromium``)."""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess

from mlsteward.store import artifacts
from tests.component.evidence.conftest import Trained, run_cli

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _bundle(uri: str, out: pathlib.Path) -> tuple[subprocess.CompletedProcess[str], dict[str, pathlib.Path]]:
    result = run_cli("docs", "--artifact", uri, "--out", str(out))
    written = {pathlib.Path(line).suffix: pathlib.Path(line) for line in result.stdout.split()}
    return result, written


def test_the_bundle_states_the_artifacts_digests_metrics_intervals_and_groups(
    trained: Trained, tmp_path: pathlib.Path
) -> None:
    result, written = _bundle(trained.uri, tmp_path)

    assert result.returncode == 0, result.stderr[-2000:]
    assert set(written) == {".html", ".md", ".json"}
    markdown, page = written[".md"].read_text(), written[".html"].read_text()
    lineage, metrics = trained.json_file("lineage.json"), trained.json_file("metrics.json")
    for text in (markdown, page):
        assert f"sha256:{trained.digest}" in text
        assert f"sha256:{lineage['dataset']['sha256']}" in text
        assert f"sha256:{lineage['model_onnx_sha256']}" in text
        assert f"version 2026-12, sha256:{lineage['feature_schema']['sha256']}" in text
    for name, value in metrics["holdout"].items():
        low, high = metrics["intervals"]["metrics"][name]
        assert f"| {name} | {value:.4f} | [{low:.4f}, {high:.4f}] |" in markdown
    for column, report in metrics["fairness"].items():
        assert f"### {column}: {report['status']}" in markdown
        for group, entry in report["groups"].items():
            bounds = metrics["intervals"]["fairness"][column][group]["selection_rate"]
            interval = f"[{bounds[0]:.4f}, {bounds[1]:.4f}]" if bounds else "n/a"
            assert f"| {group} | {entry['size']} | {entry['selection_rate']:.4f} | {interval} |" in markdown
    for column, proxy in metrics["proxies"].items():
        assert f"| {column} | {proxy['roc_auc']:.4f} |" in markdown
    assert "Rank <loan> applications" in markdown and "Rank &lt;loan&gt; applications" in page
    assert "Excluded from the inputs" in markdown and "sex, age, race, marital_status" in markdown
    assert "Required documentation is missing" not in markdown
    document = json.loads(written[".json"].read_text())
    assert document["artifact"]["digest"] == trained.digest
    assert [m["value"] for m in document["metrics"]] == [
        metrics["holdout"][k] for k in sorted(metrics["holdout"])
    ]


def test_the_html_renders_in_headless_chromium(trained: Trained, tmp_path: pathlib.Path) -> None:
    _, written = _bundle(trained.uri, tmp_path / "bundle")
    binary = shutil.which("chromium")
    assert binary is not None, "Debian's chromium package is missing: run `make system-deps`"
    url = written[".html"].as_uri()
    screenshot = tmp_path / "bundle.png"

    def chromium(profile: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / profile}", *extra, url],
            capture_output=True, text=True, check=False, timeout=90, cwd=tmp_path,
        )  # fmt: skip

    dom = chromium("dom", "--dump-dom")
    shot = chromium("shot", f"--screenshot={screenshot}", "--window-size=1280,2000")

    assert dom.returncode == 0, dom.stderr[-2000:]
    assert f"sha256:{trained.digest}" in dom.stdout
    assert dom.stdout.count("<h2>") == 12
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert screenshot.stat().st_size > 20_000  # a rendered page, not a blank one


def test_empty_required_documentation_is_flagged_in_the_bundle(
    trained: Trained, tmp_path: pathlib.Path
) -> None:
    files = {
        name: (trained.directory / name).read_bytes() for name in trained.json_file("manifest.json")["files"]
    }
    spec = json.loads(files["spec.json"])
    spec["card"]["owners"] = []
    files["spec.json"] = artifacts.canonical_json(spec)
    card = json.loads(files["card.json"])
    card["owners"] = []
    files["card.json"] = artifacts.canonical_json(card)
    ref = artifacts.write_artifact(tmp_path / "store", files)

    result, written = _bundle(f"file://{tmp_path}/store/artifacts/sha256/{ref.digest}", tmp_path / "out")

    assert result.returncode == 0
    assert "required documentation is missing: card.owners" in result.stderr
    assert "Required documentation is missing: card.owners." in written[".md"].read_text()
    assert 'class="warn"' in written[".html"].read_text()
