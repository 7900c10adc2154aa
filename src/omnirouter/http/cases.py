"""The read API a desktop needs (a case, a customer with timeline, a customer's cases), plus
case status and profile changes made from outside the stream."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field

from omnirouter.events import (
    CaseContext,
    CaseEvent,
    CaseSnapshot,
    CaseStatus,
    CustomerProfile,
    TimelineEntry,
)
from omnirouter.pipeline.cases.operations import CaseChangeRefused, CaseNotFound, CaseOperations


class CaseResponse(BaseModel):
    """A case with the context an agent sees."""

    case: CaseSnapshot
    context: CaseContext


class CustomerResponse(BaseModel):
    """A customer with profile, open case, cases and cross-channel timeline."""

    customer_id: str
    profile: CustomerProfile
    open_case_id: str | None
    cases: list[CaseSnapshot]
    timeline: list[TimelineEntry]
    previous_agents: list[str]


class StatusChangeRequest(BaseModel):
    """Move a case through its lifecycle, assign it, or both."""

    model_config = ConfigDict(extra="forbid")

    to: CaseStatus | None = None
    reason: str = Field(min_length=1, max_length=500)
    agent_id: str | None = Field(default=None, max_length=128)
    queue: str | None = Field(default=None, max_length=128)


class ProfileUpdate(BaseModel):
    """Profile fields to set; omitted fields stay as they are."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=200)
    language: str | None = Field(default=None, max_length=35)
    tier: str | None = Field(default=None, max_length=64)
    attributes: dict[str, str] | None = None


def _not_found(exc: CaseNotFound) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, str(exc))


def cases_router(operations: CaseOperations, *, admin: Any, scope: Any) -> APIRouter:
    """Routes under ``/api``: cases and customers, each acting on the tenant ``scope``
    resolves from the operator's token (see ``http.auth``)."""
    router = APIRouter(prefix="/api", tags=["cases"], dependencies=[admin])

    @router.get("/cases/{case_id}", response_model=CaseResponse)
    async def get_case(case_id: str, tenant: str = scope) -> CaseResponse:
        """A case, its status history and effort, with the customer's context."""
        try:
            view = await operations.case(case_id, tenant=tenant)
        except CaseNotFound as exc:
            raise _not_found(exc) from None
        return CaseResponse(case=view.case, context=view.context)

    @router.get("/customers/{customer_id}", response_model=CustomerResponse)
    async def get_customer(
        customer_id: str,
        tenant: str = scope,
        timeline: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> CustomerResponse:
        """A customer with their cross-channel timeline (a merged-away id answers with its
        survivor)."""
        try:
            view = await operations.customer(customer_id, tenant=tenant, timeline=timeline)
        except CaseNotFound as exc:
            raise _not_found(exc) from None
        return CustomerResponse(
            customer_id=view.customer_id,
            profile=view.profile,
            open_case_id=view.open_case_id,
            cases=list(view.cases),
            timeline=list(view.timeline),
            previous_agents=list(view.previous_agents),
        )

    @router.get("/customers/{customer_id}/cases", response_model=list[CaseSnapshot])
    async def get_customer_cases(customer_id: str, tenant: str = scope) -> list[CaseSnapshot]:
        """Every case of a customer, newest first."""
        try:
            view = await operations.customer(customer_id, tenant=tenant, timeline=1)
        except CaseNotFound as exc:
            raise _not_found(exc) from None
        return list(view.cases)

    @router.post("/cases/{case_id}/status", response_model=list[CaseEvent])
    async def change_status(
        case_id: str, body: StatusChangeRequest, tenant: str = scope
    ) -> list[CaseEvent]:
        """Resolve, close, queue or assign a case; answers with the events it caused."""
        try:
            return await operations.change_status(
                case_id,
                body.to,
                reason=body.reason,
                agent_id=body.agent_id,
                queue=body.queue,
                tenant=tenant,
            )
        except CaseNotFound as exc:
            raise _not_found(exc) from None
        except CaseChangeRefused as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None

    @router.put("/customers/{customer_id}/profile", response_model=CustomerProfile)
    async def put_profile(
        customer_id: str, body: ProfileUpdate, tenant: str = scope
    ) -> CustomerProfile:
        """Set profile fields (from a CRM, or an agent who learned them)."""
        return await operations.update_profile(
            customer_id,
            tenant=tenant,
            name=body.name,
            language=body.language,
            tier=body.tier,
            attributes=body.attributes,
        )

    return router
