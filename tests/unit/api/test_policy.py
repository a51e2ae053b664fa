"""Protected-attribute name matching: synonyms match, look-alikes do not."""

from __future__ import annotations

import re

import pytest

from mlsteward.api import policy


@pytest.mark.parametrize(
    ("column", "protected"),
    [
        ("sex", "sex"),
        ("Gender", "sex"),
        ("marital-status", "marital status"),
        ("Marital Status", "marital status"),
        ("age", "age"),
        ("date_of_birth", "age"),
        ("ethnicity", "race"),
        ("national_origin", "national origin"),
        ("religion", "religion"),
        ("public_assistance", "public assistance"),
    ],
)
def test_a_protected_column_name_is_recognised_by_its_class(column: str, protected: str) -> None:
    assert policy.protected_class(column) == protected
    assert re.match(policy.protected_name_regex(), column.lower())


@pytest.mark.parametrize(
    "column", ["average", "usage", "income", "page_views", "sextant", "agent_id", "purpose"]
)
def test_a_look_alike_column_name_is_not_protected(column: str) -> None:
    assert policy.protected_class(column) is None
    assert not re.match(policy.protected_name_regex(), column.lower())


def test_additional_names_are_protected_and_the_none_preset_protects_nothing_else() -> None:
    assert policy.protected_class("Zip Code", additional=("zip_code",)) == "additional"
    assert policy.protected_class("sex", preset="none") is None
