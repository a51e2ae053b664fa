"""KServe 0.21's model server with a scikit-learn model, for the serving benchmark (runs in the kserve venv).

KServe's own ``sklearnserver`` image is not published on PyPI, so this is the equivalent built
on the published ``kserve`` SDK the way that server is: a ``kserve.Model`` that loads one joblib
file and answers v1 and v2 requests with ``predict`` through ``get_predict_input`` /
``get_predict_response``, started by ``kserve.ModelServer`` with KServe's own flags.

Usage (inside bench/serving/.venv-peers/kserve)::

    python kserve_sklearn.py --model_name gbt --model_dir DIR --http_port 9000 --workers 1
"""

from __future__ import annotations

import argparse
import pathlib
from typing import Any

import joblib  # type: ignore[import-untyped]
import kserve  # type: ignore[import-not-found]
from kserve.utils.utils import get_predict_input, get_predict_response  # type: ignore[import-not-found]


class SKLearnModel(kserve.Model):  # type: ignore[misc]
    def __init__(self, name: str, model_dir: str) -> None:
        super().__init__(name)
        self.model_dir = pathlib.Path(model_dir)
        self.ready = False
        self._model: Any = None

    def load(self) -> bool:
        (path,) = sorted(self.model_dir.glob("*.joblib"))
        self._model = joblib.load(path)
        self.ready = True
        return True

    def predict(self, payload: Any, headers: Any = None) -> Any:
        instances = get_predict_input(payload)
        return get_predict_response(payload, self._model.predict(instances), self.name)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
    parser.add_argument("--model_dir", required=True)
    args, _ = parser.parse_known_args()
    model = SKLearnModel(args.model_name, args.model_dir)
    model.load()
    kserve.ModelServer().start([model])
