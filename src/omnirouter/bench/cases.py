"""How long the measured cases had grown by a step's end: a sample of case documents.

An event's cost to the case stage and to Redis grows with its case: the case script reads,
decodes, changes, encodes and writes the whole case document (status history, story so far,
contact trail) on every event of the case, and the case announcement carries the story. The
bench's customers come back all through a run and its traffic resolves no case, so each
customer's case gathers every contact of the run, and a later step measures longer cases than
an earlier one. Each step says how long they were, so its figures can be set against a
deployment's own cases.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import redis

from omnirouter.redis_keys import CustomerCaseKeys

__all__ = ["SAMPLE_CUSTOMERS", "case_shape", "sample_cases"]

SAMPLE_CUSTOMERS = 300
"""Customers whose cases a step reads: enough for a mean, a few milliseconds of Redis."""


def case_shape(documents: Iterable[bytes]) -> dict[str, Any]:
    """Interactions per case (mean, p90, max) and document bytes (mean, max) of ``documents``,
    the case documents (JSON) as Redis holds them; empty for none."""
    interactions: list[int] = []
    sizes: list[int] = []
    for raw in documents:
        interactions.append(int(json.loads(raw).get("interaction_count", 0)))
        sizes.append(len(raw))
    if not sizes:
        return {}
    ranked = sorted(interactions)
    return {
        "cases": len(sizes),
        "interactions_per_case": round(sum(interactions) / len(sizes), 1),
        "interactions_p90": ranked[min(len(ranked) - 1, int(0.9 * len(ranked)))],
        "interactions_max": ranked[-1],
        "document_bytes": round(sum(sizes) / len(sizes)),
        "document_bytes_max": max(sizes),
    }


def sample_cases(url: str, key_prefix: str, customers: int = SAMPLE_CUSTOMERS) -> dict[str, Any]:
    """:func:`case_shape` of every case of up to ``customers`` customers under ``key_prefix``,
    found by SCAN (in hash order, so a sample across the population, not the newest)."""
    client = redis.Redis.from_url(url)
    try:
        keys: list[bytes | str] = []
        # SCAN may return a key twice (while Redis resizes its table): each customer once.
        for key in client.scan_iter(
            match=CustomerCaseKeys.every_customers_cases(key_prefix), count=500
        ):
            if key not in keys:
                keys.append(key)
            if len(keys) == customers:
                break
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.hvals(key)
        documents = [
            # redis-py decodes no replies by default; its types allow str, encoded back here so
            # that sizes are in bytes either way.
            d if isinstance(d, bytes) else d.encode()
            for values in pipe.execute()
            for d in values
        ]
        return case_shape(documents)
    finally:
        client.close()
