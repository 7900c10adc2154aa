"""The desk API's additions for the browser desktop: "My cases", transfer targets and the whole
timeline of a case's customer, on the whole running router."""

from __future__ import annotations

import httpx
import pytest

from integration.desktop.test_desk_api import login, send_email
from support.full_stack import ADMIN_TOKEN, RunningRouter
from support.waiting import eventually

pytestmark = pytest.mark.integration


def import_known_customer(router: RunningRouter) -> None:
    answer = httpx.post(
        f"{router.base_url}/api/identity/customers",
        json={
            "identifiers": [
                {"kind": "email", "value": "ana@example.com"},
                {"kind": "phone", "value": "+15550102345"},
            ]
        },
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text


def test_my_cases_transfer_targets_and_the_whole_timeline(router: RunningRouter) -> None:
    router.add_agent("ava", "ava-secret", queues="general", name="Ava Moreno")
    router.add_agent("ben", "ben-secret", queues="general", name="Ben Okafor")
    router.add_agent("cid", "cid-secret", queues="billing")
    import_known_customer(router)
    for path in ("/desk/api/cases", "/desk/api/transfer-targets", "/desk/api/cases/x/timeline"):
        assert httpx.get(f"{router.base_url}{path}", timeout=10).status_code == 401

    ava, ben, cid = (
        login(router, "ava", "ava-secret"),
        login(router, "ben", "ben-secret"),
        login(router, "cid", "cid-secret"),
    )
    assert ava.post("/desk/api/presence", json={"presence": "available"}).status_code == 204
    send_email(router, "Parcel", "My parcel never arrived.")

    # An open offer is in "My cases" as offered, with who and what it is about.
    offered = eventually(
        lambda: ava.get("/desk/api/cases").json(), timeout_s=60, what="ava's offered case"
    )
    assert [(c["state"], c["customer_name"], c["subject"], c["queue"]) for c in offered] == [
        ("offered", "Ana Silva", "Parcel", "general")
    ]
    case_id = offered[0]["case_id"]
    assert offered[0]["expires"] > 0
    assert ben.get("/desk/api/cases").json() == []

    assert ava.post(f"/desk/api/offers/{case_id}/accept").status_code == 204
    [held] = ava.get("/desk/api/cases").json()
    assert (held["case_id"], held["state"], held["channel"]) == (case_id, "assigned", "email")
    assert held["since"] > 0

    # Transfer targets: every colleague with presence (never oneself) and every queue.
    targets = ava.get("/desk/api/transfer-targets").json()
    assert targets["agents"] == [
        {"agent_id": "ben", "name": "Ben Okafor", "queues": ["general"], "presence": "offline"},
        {"agent_id": "cid", "name": "cid", "queues": ["billing"], "presence": "offline"},
    ]
    assert [q["queue_id"] for q in targets["queues"]] == ["general", "billing"]

    # More entries than the case's context holds: the timeline still starts at the e-mail.
    notes = [f"Note {n}" for n in range(12)]
    for text in notes:
        answer = ava.post(f"/desk/api/cases/{case_id}/notes", json={"text": text})
        assert answer.status_code == 204

    def whole_timeline() -> list[dict[str, object]] | None:
        entries: list[dict[str, object]] = ava.get(f"/desk/api/cases/{case_id}/timeline").json()
        return entries if [e["text"] for e in entries][-1:] == [notes[-1]] else None

    entries = eventually(whole_timeline, timeout_s=60, what="every note on the timeline")
    recent = ava.get(f"/desk/api/cases/{case_id}").json()["context"]["recent_timeline"]
    assert "My parcel never arrived." not in [e["text"] for e in recent]
    assert [e["text"] for e in entries if e["kind"] == "message"] == ["My parcel never arrived."]
    assert [e["text"] for e in entries if e.get("system_type") == "note"] == notes
    assert [e["at"] for e in entries] == sorted(e["at"] for e in entries)
    assert len(ava.get(f"/desk/api/cases/{case_id}/timeline?limit=3").json()) == 3

    # Who may read it: as for the case itself.
    assert ben.get(f"/desk/api/cases/{case_id}/timeline").status_code == 200
    assert cid.get(f"/desk/api/cases/{case_id}/timeline").status_code == 404
    assert ava.get("/desk/api/cases/case_nope.cus_nope/timeline").status_code == 404
    assert ava.get(f"/desk/api/cases/{case_id}/timeline?limit=0").status_code == 422
    for client in (ava, ben, cid):
        client.close()
