"""The protected-attribute policy: which column names are protected, and how names match.

One source for the API server's admission rule (a CEL regular expression in the CRD) and for
the trainer's checks on the spec, the fitted pipeline and the ONNX graph.
"""

from __future__ import annotations

import re

# US Regulation B (ECOA, 12 CFR 1002) protected classes, with common column-name synonyms.
# Matched against whole normalised names, so "average" or "usage" never match "age".
US_REGULATION_B: dict[str, tuple[str, ...]] = {
    "race": ("race", "ethnicity", "ethnic_group", "ethnic_origin", "racial_group"),
    "color": ("color", "colour", "skin_color", "skin_colour", "skin_tone"),
    "religion": ("religion", "religious_affiliation", "faith", "denomination"),
    "national origin": (
        "national_origin",
        "nationality",
        "country_of_birth",
        "birth_country",
        "citizenship",
        "ancestry",
    ),
    "sex": ("sex", "gender", "gender_identity", "sexual_orientation"),
    "marital status": ("marital_status", "married", "marriage_status", "civil_status", "spouse"),
    "age": (
        "age",
        "age_years",
        "age_in_years",
        "date_of_birth",
        "birth_date",
        "dob",
        "birth_year",
        "year_of_birth",
    ),
    "public assistance": ("public_assistance", "welfare", "receives_public_assistance"),
}

PRESETS = ("us-regulation-b", "none")


def normalise(column: str) -> str:
    """Lower-case, with runs of spaces, hyphens, dots and underscores turned into one underscore."""
    return re.sub(r"[\s\-_.]+", "_", column.strip().lower()).strip("_")


def _synonym_regex(synonym: str) -> str:
    return "[-_ .]*".join(re.escape(part) for part in synonym.split("_"))


def protected_name_regex(preset: str = "us-regulation-b") -> str:
    """An RE2-compatible, anchored regex over a lower-cased column name (used in CEL)."""
    if preset == "none":
        return "^$"
    synonyms = sorted({s for group in US_REGULATION_B.values() for s in group})
    return "^(" + "|".join(_synonym_regex(s) for s in synonyms) + ")$"


def protected_class(
    column: str, preset: str = "us-regulation-b", additional: tuple[str, ...] = ()
) -> str | None:
    """The protected class a column name falls under, or None."""
    name = normalise(column)
    if name in {normalise(a) for a in additional}:
        return "additional"
    if preset == "none":
        return None
    for protected, synonyms in US_REGULATION_B.items():
        if name in synonyms:
            return protected
    return None
