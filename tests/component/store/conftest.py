"""A real MinIO server for the object-store tests, started once per session.

If MinIO cannot be built or started, these tests fail with the reason; they never skip.
"""

from __future__ import annotations

import pathlib
import uuid
from collections.abc import Iterator

import pytest

from mlsteward.dev import minio, toolchain
from mlsteward.store import s3


@pytest.fixture(scope="session")
def minio_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[minio.MinioServer]:
    try:
        server = minio.start(tmp_path_factory.mktemp("minio"), toolchain.build())
    except (toolchain.BuildError, minio.MinioError) as error:
        pytest.fail(f"the S3-compatible test server could not be built or started: {error}", pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def s3_settings(minio_server: minio.MinioServer) -> s3.S3Settings:
    return s3.S3Settings.from_environment(minio_server.env())


@pytest.fixture
def bucket(s3_settings: s3.S3Settings) -> str:
    """A fresh, empty bucket."""
    name = f"t-{uuid.uuid4().hex[:12]}"
    s3.make_client(s3_settings).create_bucket(Bucket=name)
    return name


@pytest.fixture
def cache_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "cache"
