"""The OpenAPI 3.0 document for ``mlsteward serve``: served at ``GET /openapi.json``, used by the fuzz tests.

Built from the same route list as the application (:func:`mlsteward.serving.app.routes`), with
the request and response bodies of the Open Inference Protocol (KServe v2) REST API and KServe
v1's ``:predict``. Pure: a function from nothing to a dict.
"""

from __future__ import annotations

from typing import Any

from mlsteward.serving import binary, protocol

_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
_PARAMETERS = {"type": "object", "additionalProperties": True}
_SCHEMAS: dict[str, Any] = {
    "Error": _ERROR,
    "RequestInput": {
        "type": "object",
        "description": "Tensor data as JSON in 'data', or as binary data after the JSON object "
        "(parameters.binary_data_size bytes; the binary tensor data extension).",
        "required": ["name", "shape", "datatype"],
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "datatype": {"type": "string", "enum": sorted(protocol.DATATYPES)},
            "parameters": {
                "type": "object",
                "properties": {binary.SIZE: {"type": "integer", "minimum": 0}},
                "additionalProperties": True,
            },
            "data": {"type": "array", "items": {}},
        },
    },
    "RequestOutput": {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string"},
            "parameters": {
                "type": "object",
                "properties": {binary.WANTED: {"type": "boolean"}},
                "additionalProperties": True,
            },
        },
    },
    "InferenceRequest": {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": {
                "type": "object",
                "properties": {
                    binary.WANTED_BY_DEFAULT: {"type": "boolean"},
                    protocol.REASON_CODES: {"type": "boolean"},
                },
                "additionalProperties": True,
            },
            "inputs": {"type": "array", "items": {"$ref": "#/components/schemas/RequestInput"}},
            "outputs": {"type": "array", "items": {"$ref": "#/components/schemas/RequestOutput"}},
        },
    },
    "InferenceResponse": {
        "type": "object",
        "required": ["model_name", "outputs"],
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "parameters": _PARAMETERS,
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "shape", "datatype"],
                    "properties": {
                        "name": {"type": "string"},
                        "shape": {"type": "array", "items": {"type": "integer"}},
                        "datatype": {"type": "string"},
                        "parameters": _PARAMETERS,
                        "data": {"type": "array"},
                    },
                },
            },
        },
    },
    "V1PredictRequest": {
        "type": "object",
        "required": ["instances"],
        "properties": {"instances": {"type": "array", "items": {}}},
    },
    "V1PredictResponse": {
        "type": "object",
        "required": ["predictions"],
        "properties": {"predictions": {"type": "array"}, "model_version": {"type": "string"}},
    },
    "ModelMetadata": {
        "type": "object",
        "required": ["name", "platform", "inputs", "outputs"],
        "properties": {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array"},
            "outputs": {"type": "array"},
        },
    },
}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "the request is malformed or does not fit the model",
        404: "unknown model or version",
        405: "method not allowed",
        413: "body or rows over the limit",
        503: "no model ready",
    }
    return {str(code): _json(_ref("Error"), text[code]) for code in codes}


def _path_parameters(*names: str) -> list[dict[str, Any]]:
    return [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}} for name in names]


def document() -> dict[str, Any]:
    """The whole OpenAPI document."""
    with_binary_data = {
        "type": "string",
        "format": "binary",
        "description": "An InferenceRequest JSON object of Inference-Header-Content-Length bytes, then "
        "the inputs' binary data in order",
    }
    infer = {
        "parameters": [
            {
                "name": "Inference-Header-Content-Length",
                "in": "header",
                "required": False,
                "description": "Length of the JSON object in bytes when binary tensor data follows it",
                "schema": {"type": "integer", "minimum": 0},
            }
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": _ref("InferenceRequest")},
                "application/octet-stream": {"schema": with_binary_data},
            },
        },
        "responses": {
            "200": {
                "description": "the prediction; with binary outputs, an InferenceResponse JSON object of "
                "Inference-Header-Content-Length bytes followed by the outputs' binary data",
                "content": {
                    "application/json": {"schema": _ref("InferenceResponse")},
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                },
            },
            **_errors(400, 404, 413, 503),
        },
    }
    metadata = {"responses": {"200": _json(_ref("ModelMetadata"), "model metadata"), **_errors(404, 503)}}
    ready_schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "ready": {"type": "boolean"}},
    }
    model_ready = {
        "responses": {
            "200": _json(ready_schema, "ready"),
            **_errors(404),
            "503": _json(ready_schema, "not ready"),
        }
    }
    paths: dict[str, Any] = {
        "/v2/health/live": {"get": {"responses": {"200": _json({"type": "object"}, "the process is alive")}}},
        "/v2/health/ready": {
            "get": {
                "responses": {
                    "200": _json({"type": "object"}, "ready"),
                    "503": _json({"type": "object"}, "not ready"),
                }
            }
        },
        "/v2": {"get": {"responses": {"200": _json({"type": "object"}, "server metadata")}}},
        "/v2/models/{name}": {"get": {"parameters": _path_parameters("name"), **metadata}},
        "/v2/models/{name}/versions/{version}": {
            "get": {"parameters": _path_parameters("name", "version"), **metadata}
        },
        "/v2/models/{name}/ready": {"get": {"parameters": _path_parameters("name"), **model_ready}},
        "/v2/models/{name}/versions/{version}/ready": {
            "get": {"parameters": _path_parameters("name", "version"), **model_ready}
        },
        "/v2/models/{name}/infer": {
            "post": {**infer, "parameters": [*_path_parameters("name"), *infer["parameters"]]}
        },
        "/v2/models/{name}/versions/{version}/infer": {
            "post": {**infer, "parameters": [*_path_parameters("name", "version"), *infer["parameters"]]}
        },
        "/v1/models/{name}:predict": {
            "post": {
                "parameters": _path_parameters("name"),
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("V1PredictRequest")}},
                },
                "responses": {
                    "200": _json(_ref("V1PredictResponse"), "the predictions"),
                    **_errors(400, 404, 413, 503),
                },
            }
        },
        "/v1/models/{name}": {
            "get": {
                "parameters": _path_parameters("name"),
                "responses": {"200": _json({"type": "object"}, "model status"), **_errors(404, 503)},
            }
        },
        "/metrics": {
            "get": {
                "responses": {
                    "200": {
                        "description": "Prometheus text format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                }
            }
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "mlsteward serve",
            "version": "v2",
            "description": "Open Inference Protocol (KServe v2) "
            "REST and KServe v1 predict, served by mlsteward.",
        },
        "paths": paths,
        "components": {"schemas": _SCHEMAS},
    }
