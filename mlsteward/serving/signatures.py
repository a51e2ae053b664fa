"""What a model takes and gives, read from the artifact's ``schema.json`` (contracts §1). Pure: no I/O.

A :class:`Signature` lists the features in ONNX input order with their kinds, the sensitive
columns a request may carry for the monitor (never fed to the model), and the task. The
runtime checks the ONNX graph against it when a model loads, so a request validated against
the signature fits the graph.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

Kind = Literal["numeric", "categorical"]
Task = Literal["classification", "regression"]


class SignatureError(ValueError):
    """``schema.json`` is not a contracts §1 schema."""


@dataclasses.dataclass(frozen=True)
class Feature:
    name: str
    kind: Kind


@dataclasses.dataclass(frozen=True)
class Signature:
    """The model's inputs in ONNX order, its task and classes, and the sensitive columns."""

    task: Task
    features: tuple[Feature, ...]
    classes: tuple[str, ...] | None
    positive_class: str | None
    sensitive: tuple[str, ...]
    index: dict[str, int] = dataclasses.field(init=False, compare=False, repr=False)
    names: tuple[str, ...] = dataclasses.field(init=False, compare=False, repr=False)
    numeric_only: bool = dataclasses.field(init=False, compare=False, repr=False)
    categorical_names: tuple[str, ...] = dataclasses.field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Derived once: the request path reads them for every request.
        names = tuple(feature.name for feature in self.features)
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "index", {name: position for position, name in enumerate(names)})
        object.__setattr__(self, "numeric_only", all(f.kind == "numeric" for f in self.features))
        categorical = tuple(f.name for f in self.features if f.kind == "categorical")
        object.__setattr__(self, "categorical_names", categorical)

    def positive_index(self) -> int | None:
        """Column of the positive class in ``probabilities`` (binary classification), else None."""
        if self.classes is None or self.positive_class is None or self.positive_class not in self.classes:
            return None
        return self.classes.index(self.positive_class)


def from_schema(document: Any) -> Signature:
    """Parse a ``schema.json`` document; raises SignatureError naming the offending field."""
    if not isinstance(document, dict):
        raise SignatureError("schema.json must be a JSON object")
    task = document.get("task")
    if task not in ("classification", "regression"):
        raise SignatureError(f"schema.json task must be 'classification' or 'regression', got {task!r}")
    raw_features = document.get("features")
    if not isinstance(raw_features, list) or not raw_features:
        raise SignatureError("schema.json features must be a non-empty list")
    features: list[Feature] = []
    for position, entry in enumerate(raw_features):
        if not isinstance(entry, dict):
            raise SignatureError(f"schema.json features[{position}] must be an object")
        name, kind = entry.get("name"), entry.get("kind")
        if not isinstance(name, str) or not name:
            raise SignatureError(f"schema.json features[{position}].name must be a non-empty string")
        if kind not in ("numeric", "categorical"):
            raise SignatureError(
                f"schema.json feature {name!r} has kind {kind!r}: expected numeric or categorical"
            )
        features.append(Feature(name, kind))
    names = [feature.name for feature in features]
    if len(set(names)) != len(names):
        raise SignatureError("schema.json lists a feature name twice")
    classes = document.get("classes")
    if classes is not None and (
        not isinstance(classes, list) or not all(isinstance(c, str) for c in classes)
    ):
        raise SignatureError("schema.json classes must be a list of strings or null")
    positive = document.get("positive_class")
    if positive is not None and not isinstance(positive, str):
        raise SignatureError("schema.json positive_class must be a string or null")
    sensitive = document.get("sensitive") or []
    if not isinstance(sensitive, list) or not all(isinstance(s, str) for s in sensitive):
        raise SignatureError("schema.json sensitive must be a list of strings")
    return Signature(
        task=task,
        features=tuple(features),
        classes=tuple(classes) if classes is not None else None,
        positive_class=positive,
        sensitive=tuple(s for s in sensitive if s not in set(names)),
    )
