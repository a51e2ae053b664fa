"""``make demo``: the model's life on a local stack, narrated step by step.

Starts the control plane with the local node agent and the operator, serves synthetic credit
data over HTTP, applies ``examples/``, then shows training and its gates, the model card,
serving, normal then drifted traffic, and the drift the monitor finds. It keeps running
until Ctrl-C and then stops everything it started.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import signal
import sys
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import httpx
import yaml

from mlsteward.dev import stack, traffic

NAMESPACE = "credit"
MODEL = "credit-risk"
REFUSED_MODEL = "credit-risk-four-fifths"
EXAMPLES = stack.REPO_ROOT / "examples"
Json = dict[str, Any]


class Narrator:
    """Numbered steps with elapsed time; a live status line when the output is a terminal."""

    def __init__(self, steps: int) -> None:
        self.steps, self.step, self.started = steps, 0, time.monotonic()
        self.live = sys.stdout.isatty()

    def begin(self, title: str) -> None:
        self.step += 1
        print(f"\n[{self.step}/{self.steps}] {title}", flush=True)

    def say(self, text: str) -> None:
        print(f"      {text}", flush=True)

    def wait(
        self, what: str, probe: Callable[[], object], timeout_s: float, status: Callable[[], str]
    ) -> Any:
        deadline = time.monotonic() + timeout_s
        spinner = "|/-\\"
        tick = 0
        while time.monotonic() < deadline:
            value = probe()
            if value:
                if self.live:
                    print("\r" + " " * 100 + "\r", end="")
                return value
            if self.live:
                line = f"      {spinner[tick % 4]} {what} ({time.monotonic() - self.started:.0f}s) {status()}"
                print("\r" + line[:100].ljust(100), end="", flush=True)
            tick += 1
            time.sleep(1)
        raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def _get(st: stack.Stack, resource: str, name: str) -> Json:
    out = st.cp.kubectl("get", resource, name, "-n", NAMESPACE, "-o", "json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else {}


def _condition(obj: Json, kind: str) -> Json:
    return next((dict(c) for c in obj.get("status", {}).get("conditions", []) if c["type"] == kind), {})


def _phase(st: stack.Stack, resource: str, name: str) -> str:
    return str(_get(st, resource, name).get("status", {}).get("phase", "Pending"))


def _apply_examples(st: stack.Stack, url: str) -> None:
    for path in sorted(EXAMPLES.glob("*.yaml")):
        manifest = yaml.safe_load(path.read_text())
        if manifest["kind"] == "Model":
            # The examples read from the store's volume; here the same data comes over HTTP.
            manifest["spec"]["dataset"]["uri"] = url
        st.cp.kubectl("apply", "-n", NAMESPACE, "-f", "-", input_text=yaml.safe_dump(manifest))


def _serving_ip(st: stack.Stack) -> str | None:
    pods = json.loads(
        st.cp.kubectl(
            "get",
            "pods",
            "-n",
            NAMESPACE,
            "-l",
            f"app.kubernetes.io/name=mlsteward-server,app.kubernetes.io/instance={MODEL}",
            "-o",
            "json",
        ).stdout
    )["items"]
    if len(pods) != 1 or pods[0]["metadata"].get("deletionTimestamp"):
        return None
    pod = pods[0]
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))
    has_monitor = any(c["name"] == "monitor" for c in pod["spec"]["containers"])
    return str(pod["status"]["podIP"]) if ready and has_monitor else None


def run(directory: pathlib.Path, *, rows: int = 20_000, exit_when_done: bool = False) -> int:
    from mlsteward.training import datasets

    narrator = Narrator(steps=6)
    narrator.begin("A local Kubernetes control plane, a local node agent and the mlsteward operator")
    shutil.rmtree(directory, ignore_errors=True)
    st = stack.start(directory)
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    try:
        narrator.say(f"API server {st.cp.server}; pods run as local processes on 127.80.x.y pod IPs")
        narrator.say(
            f"operator runs under ServiceAccount {stack.OPERATOR_NAMESPACE}/{stack.OPERATOR_ACCOUNT}"
        )

        narrator.begin("Training data and the Models")
        normal, shifted = st.data.directory / "credit.parquet", st.data.directory / "credit-shifted.parquet"
        datasets.write(datasets.generate(rows, seed=0), normal)
        datasets.write(datasets.generate(rows // 4, seed=1, shift=True), shifted)
        narrator.say(f"{rows:,} synthetic loan applications with sex, age, race and marital status, and a")
        narrator.say("planted historical bias, served at " + st.data.url("credit.parquet"))
        stack.create_namespace(st.cp, NAMESPACE, directory / "store")
        _apply_examples(st, st.data.url("credit.parquet"))
        refused = st.cp.kubectl(
            "apply", "--dry-run=server", "-n", NAMESPACE, "-f", "-", check=False, input_text=_USES_SEX
        )
        narrator.say("a Model using `sex` as a feature is refused by the API server itself:")
        narrator.say("  " + refused.stderr.strip().splitlines()[0][:160])

        narrator.begin("Training Jobs: data checks, protected-attribute policy, fit, ONNX parity, gates")
        narrator.wait(
            "training",
            lambda: _condition(_get(st, "models", MODEL), "Ready").get("status") == "True",
            600,
            lambda: f"{MODEL}: {_phase(st, 'models', MODEL)}",
        )
        version = _get(st, "models", MODEL)["status"]["versions"][-1]
        metrics = ", ".join(f"{k} {v:.3f}" for k, v in sorted(version["metrics"].items()))
        narrator.say(f"{MODEL} v{version['version']}: {metrics}")
        narrator.say(
            f"gates: quality {version['gates']['quality']}, fairness {version['gates']['fairness']}; "
            f"champion is v{version['version']}"
        )
        artifact = pathlib.Path(urllib.parse.urlparse(version["artifact"]["uri"]).path)
        narrator.say(
            f"artifact sha256:{version['artifact']['digest'][:16]}... model card: {artifact / 'card.md'}"
        )
        narrator.wait(
            "the four-fifths Model",
            lambda: _get(st, "models", REFUSED_MODEL).get("status", {}).get("versions"),
            600,
            lambda: f"{REFUSED_MODEL}: {_phase(st, 'models', REFUSED_MODEL)}",
        )
        narrator.wait(
            "its verdict",
            lambda: _get(st, "models", REFUSED_MODEL)["status"]["versions"][-1]["phase"] != "Training",
            600,
            lambda: "",
        )
        rejected = _get(st, "models", REFUSED_MODEL)["status"]["versions"][-1]
        narrator.say(
            f"{REFUSED_MODEL}: {rejected['phase']} ({rejected.get('reason')}): "
            f"{(rejected.get('message') or '')[:150]}"
        )

        narrator.begin("Serving: ONNX Runtime pods with the drift-monitor sidecar")
        ip = narrator.wait(
            "the serving pod",
            lambda: _serving_ip(st),
            300,
            lambda: f"Deployment {_phase(st, 'deployments.mlsteward.io', MODEL)}",
        )
        infer_url = f"http://{ip}:8080/v2/models/{MODEL}/infer"
        import pandas as pd

        frame = pd.read_parquet(normal)
        numeric = [
            "income",
            "debt_ratio",
            "loan_amount",
            "term_months",
            "employment_years",
            "credit_history_years",
            "delinquencies",
        ]
        categorical = ["purpose", "home_ownership"]
        answer = httpx.post(
            infer_url, json=traffic.infer_body(frame.head(1), numeric, categorical), timeout=30
        ).json()
        narrator.say(f"POST {infer_url}")
        narrator.say(
            f"  -> model_version {answer['model_version']}, outputs "
            + ", ".join(f"{o['name']}={o['data'][:2]}" for o in answer["outputs"])
        )

        narrator.begin("Normal traffic, then a drifted population")
        sent = traffic.send(infer_url, frame.sample(4000, random_state=1), numeric, categorical, ["sex"])
        narrator.say(f"{sent:,} normal applications scored")
        narrator.wait(
            "a verdict",
            lambda: _condition(_get(st, "monitors", MODEL), "Drifting").get("status") == "False",
            180,
            lambda: f"Monitor {_phase(st, 'monitors', MODEL)}",
        )
        narrator.say("monitor: no drift")
        sent = traffic.send(infer_url, pd.read_parquet(shifted), numeric, categorical, ["sex"])
        narrator.say(f"{sent:,} applications from a poorer, more indebted population scored")
        narrator.wait(
            "drift",
            lambda: _condition(_get(st, "monitors", MODEL), "Drifting").get("status") == "True",
            180,
            lambda: f"Monitor {_phase(st, 'monitors', MODEL)}",
        )
        features = _get(st, "monitors", MODEL)["status"]["features"]
        for feature in features[:6]:
            mark = "DRIFT" if feature["drifting"] else "ok   "
            narrator.say(
                f"{mark} {feature['name']:<22} {feature['test']:<15} {feature['score']:.3f} "
                f"(threshold {feature['threshold']})"
            )

        narrator.begin("Look around")
        print(
            f"""
      export KUBECONFIG={st.cp.kubeconfig}
      export PATH={st.cp.toolchain.kubernetes_dir}:$PATH
      kubectl get mlsteward -n {NAMESPACE}
      kubectl describe monitors.mlsteward.io {MODEL} -n {NAMESPACE}
      drift report:  http://{ip}:8082/report
      metrics:       http://{ip}:8080/metrics  and  http://{ip}:8082/metrics
      logs:          {directory}/operator.log, {directory}/agent/logs/

      Not yet in this demo: retraining on drift, challenger gates, canary and promotion.
      ready in {time.monotonic() - narrator.started:.0f} s""",
            flush=True,
        )
        if exit_when_done:
            return 0
        print("\nPress Ctrl-C to stop and clean up.", flush=True)
        while not stop["now"]:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        print("\nstopping everything the demo started ...", flush=True)
        st.stop()
    return 0


_USES_SEX = """
apiVersion: mlsteward.io/v1alpha1
kind: Model
metadata: {name: uses-sex}
spec:
  task: classification
  dataset: {uri: /data/credit.csv, target: default, features: [income, sex]}
  estimator: {className: LogisticRegression}
"""
