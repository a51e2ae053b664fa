"""Fixtures for the trainer's component tests: real files, real processes, a real HTTP server."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import http.server
import json
import os
import pathlib
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
import yaml

from mlsteward.training import datasets

REPO = pathlib.Path(__file__).resolve().parents[3]
MLSTEWARD = pathlib.Path(sys.executable).parent / "mlsteward"
CREDIT_ROWS = 4000


@dataclasses.dataclass(frozen=True)
class Run:
    """One finished ``mlsteward train`` process."""

    returncode: int
    outcome: dict[str, Any]
    stdout: str
    stderr: str

    def artifact_dir(self) -> pathlib.Path:
        assert self.outcome["artifact"] is not None, self.stderr[-3000:]
        return pathlib.Path(self.outcome["artifact"]["uri"].removeprefix("file://"))

    def json_file(self, name: str) -> Any:
        return json.loads((self.artifact_dir() / name).read_text())


def train(
    store: pathlib.Path,
    spec: dict[str, Any] | None = None,
    *,
    spec_path: pathlib.Path | None = None,
    env: dict[str, str] | None = None,
    args: list[str] | None = None,
    timeout: float = 180,
) -> Run:
    """Run ``mlsteward train`` as a subprocess; the spec is written to a YAML file unless given."""
    command = [str(MLSTEWARD), "train", "--store", str(store)]
    if spec is not None:
        spec_path = store.parent / f"spec-{store.name}.yaml"
        spec_path.write_text(yaml.safe_dump(spec))
    if spec_path is not None:
        command += ["--spec", str(spec_path)]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MLSTEWARD_")}
    environment.update(env or {})
    result = subprocess.run(
        [*command, *(args or [])],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=environment,
        cwd=REPO,
    )
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, (
        f"expected one outcome line, got stdout={result.stdout!r} stderr={result.stderr[-3000:]}"
    )
    return Run(result.returncode, json.loads(lines[0]), result.stdout, result.stderr)


credit_spec = datasets.example_spec


def no_artifact(store: pathlib.Path) -> bool:
    """True when nothing was written at any final artifact location."""
    final = store / "artifacts" / "sha256"
    return not final.exists() or not any(final.iterdir())


@pytest.fixture(scope="session")
def credit_frame() -> pd.DataFrame:
    return datasets.generate(CREDIT_ROWS, seed=3)


@pytest.fixture(scope="session")
def credit_parquet(tmp_path_factory: pytest.TempPathFactory, credit_frame: pd.DataFrame) -> pathlib.Path:
    path = tmp_path_factory.mktemp("data") / "credit.parquet"
    datasets.write(credit_frame, path)
    return path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def http_root(tmp_path: pathlib.Path) -> Iterator[tuple[pathlib.Path, str]]:
    """A directory served by a real ``http.server`` on 127.0.0.1; yields (directory, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        with contextlib.suppress(Exception):
            server.shutdown()
        server.server_close()
