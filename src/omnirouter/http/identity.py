"""Identity administration over HTTP: look a customer up, list merge reviews, split a merge,
erase a customer on request."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field

from omnirouter.events import CustomerUnmerged, Identifier
from omnirouter.pipeline.identity.erasure import CustomerErasure
from omnirouter.pipeline.identity.operations import IdentityOperations
from omnirouter.pipeline.identity.store import UnmergeRefused


class MergeView(BaseModel):
    """One recorded merge into a customer."""

    absorbed_id: str
    linking: list[str]
    moved: list[str]
    event_id: str
    at_ms: int


class CustomerView(BaseModel):
    """A customer as identity knows it."""

    customer_id: str
    status: str
    identifiers: list[Identifier]
    merges: list[MergeView]


class ReviewView(BaseModel):
    """A merge the guardrails stopped."""

    review_id: str
    customer_ids: list[str]
    resolved_to: str
    guardrail: str
    reason: str
    identifiers: list[str]
    event_id: str
    created_at_ms: int


class ImportRequest(BaseModel):
    """Identifiers of one customer, as a CRM knows them."""

    model_config = ConfigDict(extra="forbid")

    identifiers: tuple[Identifier, ...] = Field(min_length=1, max_length=50)


class UnmergeRequest(BaseModel):
    """Which merge to undo, who undoes it and why."""

    model_config = ConfigDict(extra="forbid")

    absorbed_id: str | None = Field(default=None, description="Default: the latest merge.")
    operator: str = Field(min_length=1, max_length=200)
    reason: str = Field(default="", max_length=2000)


class ErasureView(BaseModel):
    """What erasing a customer removed: ids and counts, never an identifier."""

    customer_id: str = Field(description="The canonical customer erased.")
    erased_customer_ids: list[str]
    erased_case_ids: list[str]
    removed: dict[str, int]
    event_id: uuid.UUID = Field(description="The CustomerErased event announcing it.")


def identity_router(
    operations: IdentityOperations,
    *,
    admin: Any,
    scope: Any,
    erasure: CustomerErasure | None = None,
) -> APIRouter:
    """Routes under ``/api/identity``, every one behind ``admin`` (erasure when given), each
    acting on the tenant ``scope`` resolves from the operator's token (see ``http.auth``): a
    tenant's token cannot look up, split or erase another tenant's customer."""
    router = APIRouter(prefix="/api/identity", tags=["identity"], dependencies=[admin])

    @router.get("/customers/{customer_id}", response_model=CustomerView)
    async def get_customer(customer_id: str, tenant: str = scope) -> CustomerView:
        """The customer ``customer_id`` names now (a merged id answers with its survivor)."""
        record = await operations.customer(customer_id, tenant=tenant)
        if record is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown customer {customer_id}")
        return CustomerView(
            customer_id=record.customer_id,
            status=record.status,
            identifiers=list(record.identifiers),
            merges=[
                MergeView(
                    absorbed_id=m.absorbed_id,
                    linking=list(m.linking),
                    moved=list(m.moved),
                    event_id=m.event_id,
                    at_ms=m.at_ms,
                )
                for m in record.merges
            ],
        )

    @router.post("/customers", status_code=status.HTTP_200_OK)
    async def import_customer(body: ImportRequest, tenant: str = scope) -> dict[str, Any]:
        """Make a customer known with their identifiers (a CRM import); links known ones."""
        try:
            customer_id, rejected = await operations.import_customer(
                list(body.identifiers), tenant=tenant
            )
        except ValueError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
        return {"customer_id": customer_id, "rejected": rejected}

    @router.get("/reviews", response_model=list[ReviewView])
    async def list_reviews(
        tenant: str = scope, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> list[ReviewView]:
        """Merge reviews waiting for a person, oldest first."""
        reviews = await operations.open_reviews(tenant=tenant, limit=limit)
        return [
            ReviewView(
                review_id=r.review_id,
                customer_ids=list(r.customer_ids),
                resolved_to=r.resolved_to,
                guardrail=r.guardrail,
                reason=r.reason,
                identifiers=list(r.identifiers),
                event_id=r.event_id,
                created_at_ms=r.created_at_ms,
            )
            for r in reviews
        ]

    @router.post("/customers/{customer_id}/unmerge", response_model=CustomerUnmerged)
    async def unmerge(
        customer_id: str, body: UnmergeRequest, tenant: str = scope
    ) -> CustomerUnmerged:
        """Split a merged customer back along its merge history; answers with the split event."""
        try:
            outcome = await operations.unmerge(
                customer_id,
                absorbed_id=body.absorbed_id,
                operator=body.operator,
                reason=body.reason,
                tenant=tenant,
            )
        except UnmergeRefused as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
        return outcome.event

    if erasure is not None:

        @router.delete("/customers/{customer_id}", response_model=ErasureView)
        async def erase_customer(customer_id: str, tenant: str = scope) -> ErasureView:
            """Erase a customer on request: identifiers, timeline, cases and profile of the
            person (a merged id erases its survivor and everyone merged into it)."""
            outcome = await erasure.erase(customer_id, tenant=tenant)
            if outcome is None:
                raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown customer {customer_id}")
            report = outcome.report
            return ErasureView(
                customer_id=report.customer_id,
                erased_customer_ids=list(report.customer_ids),
                erased_case_ids=list(report.case_ids),
                removed=report.counts(),
                event_id=outcome.event.event_id,
            )

    return router
