"""Reason codes: the features that contributed most to each prediction, computed with the ONNX model itself.

For every row and feature, the feature is replaced by its reference value (the training profile's
median for numerics, its most frequent category for categoricals) and the row scored again; the
drop in the score is that feature's contribution. The ``top_k`` features with the largest
contributions towards the prediction are returned, by name, so reason codes are always drawn
from the model's own inputs. Works for any model (linear or trees) at the cost of ``F`` extra
rows per row, which is why only requests that ask for it pay it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlsteward.serving import models

_AnyArray = np.ndarray[Any, Any]


def _score(model: models.LoadedModel, outputs: dict[str, _AnyArray], classes: _AnyArray | None) -> _AnyArray:
    if "variable" in outputs:
        return outputs["variable"].reshape(-1).astype(np.float64)
    probabilities = outputs["probabilities"].astype(np.float64)
    if classes is None:
        positive = model.signature.positive_index()
        if positive is not None and probabilities.shape[1] == 2:
            return probabilities[:, positive]
        classes = probabilities.argmax(axis=1)
    picked: _AnyArray = probabilities[np.arange(len(probabilities)), classes % probabilities.shape[1]]
    return picked


async def reason_codes(
    model: models.LoadedModel, columns: dict[str, _AnyArray], outputs: dict[str, _AnyArray], top_k: int
) -> _AnyArray:
    """A ``[rows, k]`` object array of feature names, most contributing first."""
    names = model.signature.names
    rows = next(iter(columns.values())).shape[0]
    k = min(top_k, len(names))
    probabilities = outputs.get("probabilities")
    positive = model.signature.positive_index()
    classes = None
    if probabilities is not None and not (positive is not None and probabilities.shape[1] == 2):
        classes = np.repeat(probabilities.argmax(axis=1), len(names))
    base = _score(model, outputs, None if classes is None else classes[:: len(names)])
    # One batch of rows * F perturbed copies: copy j of row i has feature j set to its reference.
    perturbed: dict[str, _AnyArray] = {}
    for j, feature in enumerate(model.signature.features):
        column = np.repeat(columns[feature.name], len(names), axis=0)
        column[j :: len(names)] = model.reference[feature.name]
        perturbed[feature.name] = column
    scored = await model.batcher.submit(model.runtime.feeds(perturbed), rows * len(names))
    contributions = base.repeat(len(names)) - _score(model, scored, classes)
    contributions = contributions.reshape(rows, len(names))
    order = np.argsort(-contributions, axis=1, kind="stable")[:, :k]
    codes = np.empty((rows, k), dtype=object)
    for i in range(rows):
        codes[i] = [names[j] for j in order[i]]
    return codes
