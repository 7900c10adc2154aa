"""Identity events beyond the merge itself: merge reviews, operator splits and erasures."""

from __future__ import annotations

import uuid
from typing import Self

from pydantic import Field, model_validator

from omnirouter.events.identifiers import Identifier
from omnirouter.events.models import EntityId, EventEnvelope

__all__ = ["CustomerErased", "CustomerUnmerged", "MergeReview"]


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


class CustomerErased(EventEnvelope):
    """A customer was erased on request ("right to be forgotten"): identifiers, timeline,
    cases and profile are gone from the router's state.

    It carries ids and counts only, never an identifier or a word the customer wrote, so the
    announcement itself holds no personal data. Consumers that keep copies (a CRM sync, a data
    warehouse, a custom desktop) purge what they hold for these customer and case ids.
    """

    customer_id: EntityId = Field(description="The canonical customer that was erased.")
    erased_customer_ids: tuple[EntityId, ...] = Field(
        min_length=1,
        description="Every customer record removed: the canonical one first, then each one "
        "merged into it.",
    )
    erased_case_ids: tuple[EntityId, ...] = ()
    identifiers: int = Field(ge=0, description="Identifiers (addresses) removed.")
    cases: int = Field(ge=0, description="Cases removed.")
    timeline_entries: int = Field(ge=0, description="Distinct timeline entries removed.")
    merge_records: int = Field(ge=0, description="Recorded merges removed.")
    merge_reviews: int = Field(ge=0, description="Merge reviews mentioning the customer removed.")
    routing_entries: int = Field(
        ge=0, description="Queue places, offers, assignments, timers and acknowledgements removed."
    )

    @model_validator(mode="after")
    def _canonical_first(self) -> Self:
        if self.erased_customer_ids[0] != self.customer_id:
            raise ValueError("erased_customer_ids must start with the canonical customer_id")
        return self
