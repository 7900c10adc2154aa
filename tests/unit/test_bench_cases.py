"""The bench's sample of case documents: how long the measured cases had grown."""

from __future__ import annotations

import json

from omnirouter.bench.cases import case_shape
from omnirouter.redis_keys import CustomerCaseKeys


def _doc(interactions: int, padding: int = 0) -> bytes:
    return json.dumps({"interaction_count": interactions, "story": "x" * padding}).encode()


def test_a_sample_tells_interactions_per_case_and_document_bytes() -> None:
    documents = [_doc(n) for n in range(1, 11)] + [_doc(40, padding=500)]
    shape = case_shape(documents)
    assert shape["cases"] == 11
    assert shape["interactions_per_case"] == round((55 + 40) / 11, 1)
    assert shape["interactions_p90"] == 10  # the 10th of 11, ranked
    assert shape["interactions_max"] == 40
    assert shape["document_bytes"] == round(sum(len(d) for d in documents) / 11)
    assert shape["document_bytes_max"] == len(documents[-1])


def test_no_cases_is_no_figure_rather_than_a_zero() -> None:
    assert case_shape([]) == {}


def test_glob_characters_in_the_prefix_match_only_themselves() -> None:
    pattern = CustomerCaseKeys.every_customers_cases("bench*1")
    assert pattern == "{bench\\*1:cus:*}:cases"
