"""The chart repeats no source of truth, the alert rules pass promtool's own tests, and the
Dockerfiles keep the image rules (pinned slim base, non-root, no build tools at run time)."""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess

import yaml

from mlsteward.dev import chart
from mlsteward.operator import rbac

REPO_ROOT = pathlib.Path(__file__).resolve().parents[3]
CHART = REPO_ROOT / "charts" / "mlsteward"


def _promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is missing: install Debian's prometheus package (`make system-deps`)"
    return found


def test_the_chart_files_are_current_copies_of_their_sources() -> None:
    assert chart.stale(REPO_ROOT) == [], "charts/mlsteward/files is stale: run `mlsteward dev chart`"
    for crd in (REPO_ROOT / "crds").glob("*.yaml"):
        assert (CHART / "files" / "crds" / crd.name).read_bytes() == crd.read_bytes()
    rules = yaml.safe_load((CHART / "files" / "operator-rules.yaml").read_text())["rules"]
    assert rules == rbac.rules()


def test_a_changed_source_makes_the_chart_stale_and_write_repairs_it(tmp_path: pathlib.Path) -> None:
    for folder in ("crds", "deploy", "charts"):
        shutil.copytree(REPO_ROOT / folder, tmp_path / folder)
    models = tmp_path / "crds" / "models.mlsteward.io.yaml"
    models.write_text(models.read_text() + "# changed\n")
    (tmp_path / "charts" / "mlsteward" / "files" / "crds" / "gone.mlsteward.io.yaml").write_text("{}\n")

    assert chart.stale(tmp_path) == [
        "files/crds/models.mlsteward.io.yaml",
        "files/crds/gone.mlsteward.io.yaml",
    ]
    assert chart.main(["--check", "--root", str(tmp_path)]) == 1
    assert chart.main(["--root", str(tmp_path)]) == 0
    assert chart.stale(tmp_path) == []


def test_the_alert_rules_are_valid_and_pass_their_promtool_tests() -> None:
    promtool = _promtool()
    monitoring = REPO_ROOT / "deploy" / "monitoring"
    check = subprocess.run(
        [promtool, "check", "rules", str(monitoring / "prometheus-rules.yaml")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    result = subprocess.run(
        [promtool, "test", "rules", "rules-test.yaml"],
        cwd=monitoring / "tests", capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def _stages(dockerfile: pathlib.Path) -> list[str]:
    return re.split(r"(?m)^FROM ", dockerfile.read_text())[1:]


def test_the_images_run_as_65532_from_a_pinned_slim_base_without_build_tools() -> None:
    for name in ("operator/Dockerfile", "serving/Dockerfile"):
        dockerfile = REPO_ROOT / name
        text = dockerfile.read_text()
        assert re.search(r"(?m)^ARG PYTHON_IMAGE=python:3\.11(\.\d+)?-slim-bookworm$", text), name
        stages = _stages(dockerfile)
        final = stages[-1]
        runtime = next(s for s in stages if "USER 65532:65532" in s)
        assert "USER 65532:65532" in runtime, name
        for stage in (final, runtime):
            assert not re.search(r"apt-get|gcc|build-essential|pip install", stage), f"{name}: {stage[:60]}"
        assert "org.opencontainers.image.source" in text and "PYTHONDONTWRITEBYTECODE=1" in text, name
        # A plain image reference: the registry is the user's choice.
        assert not re.search(r"(?m)^(FROM|ARG PYTHON_IMAGE=)\S*[a-z0-9-]+\.[a-z]{2,}/", text), name
