"""Identity events beyond the merge itself: merge reviews and operator splits."""

from __future__ import annotations

import uuid
from typing import Self

from pydantic import Field, model_validator

from omnirouter.events.identifiers import Identifier
from omnirouter.events.models import EntityId, EventEnvelope

__all__ = ["CustomerUnmerged", "MergeReview"]


class MergeReview(EventEnvelope):
    """A merge the guardrails stopped: a person decides, the router does not guess."""

    review_id: EntityId
    customer_ids: tuple[EntityId, ...] = Field(
        min_length=2, description="The customers the event would have merged, oldest first."
    )
    resolved_to: EntityId = Field(description="The customer the event was attributed to instead.")
    reason: str = Field(min_length=1)
    guardrail: str = Field(
        description='Which rule stopped it: "max_customers_per_identifier", '
        '"max_identifiers_per_customer" or "operator_split".'
    )
    identifiers: tuple[Identifier, ...] = ()
    triggered_by_event_id: uuid.UUID


class CustomerUnmerged(EventEnvelope):
    """An operator split a merged customer back along its recorded merge history."""

    survivor_id: EntityId = Field(description="The customer that had absorbed the other.")
    restored_id: EntityId = Field(description="The absorbed customer, active again.")
    restored_identifiers: tuple[Identifier, ...] = ()
    operator: str = Field(min_length=1, max_length=200)
    reason: str = Field(default="", max_length=2000)

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        if self.survivor_id == self.restored_id:
            raise ValueError("a customer cannot be split from itself")
        return self
