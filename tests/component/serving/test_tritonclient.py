"""A third-party Open Inference Protocol client (Triton's HTTP client) talks to the server unchanged."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton  # type: ignore[import-untyped]
from tritonclient.utils import InferenceServerException  # type: ignore[import-untyped]

from tests.component.serving.conftest import Server, Store, routing_document
from tests.component.serving.test_endpoints import ROW


def test_the_triton_http_client_reads_health_metadata_and_infers(start_server: Any, store: Store) -> None:
    server: Server = start_server(routing_document(("1", store.digests["v1"])))
    client = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("credit")
        metadata = client.get_model_metadata("credit")
        assert [i["name"] for i in metadata["inputs"]] == list(ROW)
        inputs = []
        for name, value in ROW.items():
            if isinstance(value, float):
                tensor = triton.InferInput(name, [2, 1], "FP32")
                tensor.set_data_from_numpy(np.full((2, 1), value, dtype=np.float32), binary_data=False)
            else:
                tensor = triton.InferInput(name, [2, 1], "BYTES")
                tensor.set_data_from_numpy(np.array([[value], [value]], dtype=object), binary_data=False)
            inputs.append(tensor)
        outputs = [triton.InferRequestedOutput("probabilities", binary_data=False)]
        result = client.infer("credit", inputs, outputs=outputs, request_id="triton-1")
        probabilities = result.as_numpy("probabilities")
        assert probabilities.shape == (2, 2)
        assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
        response = result.get_response()
        assert response["id"] == "triton-1" and response["model_version"] == "1"
        with pytest.raises(InferenceServerException, match="missing feature"):
            client.infer("credit", inputs[:3])
    finally:
        client.close()


def test_the_triton_http_client_sends_and_receives_binary_tensor_data(
    start_server: Any, store: Store
) -> None:
    server: Server = start_server(routing_document(("1", store.digests["v1"])))
    client = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    try:
        assert "binary_tensor_data" in client.get_server_metadata()["extensions"]

        def tensors(rows: int, binary_data: bool, missing: bool = False) -> list[Any]:
            inputs = []
            for position, (name, value) in enumerate(ROW.items()):
                if isinstance(value, float):
                    tensor = triton.InferInput(name, [rows, 1], "FP32")
                    column = np.full((rows, 1), value, dtype=np.float32)
                    if missing and position == 0:
                        column[0, 0] = np.nan  # binary data's missing value (JSON's null), imputed
                else:
                    tensor = triton.InferInput(name, [rows, 1], "BYTES")
                    column = np.array([[value]] * rows, dtype=object)
                tensor.set_data_from_numpy(column, binary_data=binary_data)
                inputs.append(tensor)
            return inputs

        as_json = client.infer("credit", tensors(3, binary_data=False), request_id="j")
        # No outputs named: tritonclient asks for every output as binary data (binary_data_output).
        as_binary = client.infer("credit", tensors(3, binary_data=True), request_id="b")
        assert as_binary.get_response()["outputs"][1]["parameters"]["binary_data_size"] == 3 * 2 * 4
        assert as_binary.get_response()["id"] == "b" and as_binary.get_response()["model_version"] == "1"
        np.testing.assert_array_equal(as_binary.as_numpy("label"), as_json.as_numpy("label"))
        np.testing.assert_allclose(as_binary.as_numpy("probabilities"), as_json.as_numpy("probabilities"))
        mixed = client.infer(
            "credit",
            tensors(3, binary_data=True),
            outputs=[
                triton.InferRequestedOutput("probabilities", binary_data=True),
                triton.InferRequestedOutput("label", binary_data=False),
            ],
        )
        assert "data" in mixed.get_response()["outputs"][1]
        imputed = client.infer("credit", tensors(3, binary_data=True, missing=True))
        assert imputed.as_numpy("probabilities").shape == (3, 2)
        np.testing.assert_allclose(mixed.as_numpy("probabilities"), as_json.as_numpy("probabilities"))
        wrong = tensors(3, binary_data=True)
        wrong[0] = triton.InferInput(next(iter(ROW)), [2, 1], "FP32")
        wrong[0].set_data_from_numpy(np.ones((2, 1), dtype=np.float32), binary_data=True)
        wrong[0].set_shape([3, 1])  # 8 bytes sent for a [3, 1] FP32 tensor
        with pytest.raises(InferenceServerException, match="needs 12 bytes"):
            client.infer("credit", wrong)
    finally:
        client.close()
