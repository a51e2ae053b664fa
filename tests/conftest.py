"""Root test configuration shared by every level.

Role-specific fixtures live beside their tests (``tests/<level>/<role>/conftest.py``).
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--long",
        action="store_true",
        default=False,
        help="run chaos and soak tests with their long counts (default: a modest count)",
    )


@pytest.fixture(scope="session")
def long_run(request: pytest.FixtureRequest) -> bool:
    """True when the run asked for the long chaos/soak variants."""
    return bool(request.config.getoption("--long"))
