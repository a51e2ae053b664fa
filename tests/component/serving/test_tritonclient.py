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
