"""The desktop API on the whole running router: sign-in, offers, the case, reply, transfer."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from urllib.parse import urlencode

import httpx
import pytest

from omnirouter.channels.twilio.signature import twilio_signature
from support.full_stack import ADMIN_TOKEN, INBOUND_TWILIO_TOKEN
from support.waiting import eventually

pytestmark = pytest.mark.integration


def send_email(router, subject: str, text: str) -> None:  # type: ignore[no-untyped-def]
    message = EmailMessage()
    message["From"] = "Ana Silva <ana@example.com>"
    message["To"] = "support@example.com"
    message["Subject"] = subject
    message["Message-ID"] = "<first-mail@example.com>"
    message.set_content(text)
    with smtplib.SMTP("127.0.0.1", router.smtp_port, timeout=30) as smtp:
        smtp.send_message(message)


def send_sms(router, text: str) -> httpx.Response:  # type: ignore[no-untyped-def]
    fields = {
        "MessageSid": "SM" + "7" * 32,
        "From": "+15550102345",
        "To": "+15017122661",
        "Body": text,
    }
    url = f"{router.base_url}/webhooks/twilio/messages"
    signature = twilio_signature(INBOUND_TWILIO_TOKEN, url, fields.items())
    return httpx.post(
        url,
        content=urlencode(fields),
        timeout=30,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        },
    )


def login(router, agent_id: str, password: str) -> httpx.Client:  # type: ignore[no-untyped-def]
    client = httpx.Client(base_url=router.base_url, timeout=30)
    answer = client.post("/desk/api/login", json={"agent_id": agent_id, "password": password})
    assert answer.status_code == 200, answer.text
    client.headers["Authorization"] = f"Bearer {answer.json()['token']}"
    return client


def test_an_agent_takes_the_case_replies_by_sms_and_transfers_it(router, providers) -> None:  # type: ignore[no-untyped-def]
    router.add_agent("ava", "ava-secret", queues="general")
    router.add_agent("ben", "ben-secret", queues="general")
    router.add_agent("cid", "cid-secret", queues="billing")
    known = httpx.post(
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
    assert known.status_code == 200, known.text

    assert httpx.get(f"{router.base_url}/desk/api/me", timeout=10).status_code == 401
    ava, ben, cid = (
        login(router, "ava", "ava-secret"),
        login(router, "ben", "ben-secret"),
        login(router, "cid", "cid-secret"),
    )
    assert ava.post("/desk/api/presence", json={"presence": "available"}).status_code == 204

    send_email(router, "Parcel", "My parcel never arrived.")
    offer = eventually(
        lambda: ava.get("/desk/api/offers").json(), timeout_s=60, what="an offer for ava"
    )
    case_id = offer[0]["case_id"]
    assert ava.post(f"/desk/api/offers/{case_id}/accept").status_code == 204
    assert send_sms(router, "Any news about the parcel?").status_code == 200

    def both_messages():  # type: ignore[no-untyped-def]
        case = ava.get(f"/desk/api/cases/{case_id}").json()
        texts = [t["text"] for t in case["context"]["recent_timeline"] if t["kind"] == "message"]
        return case if len(texts) == 2 else None

    case = eventually(both_messages, timeout_s=60, what="both messages on the case")
    assert [t["channel"] for t in case["context"]["recent_timeline"] if t["kind"] == "message"] == [
        "email",
        "sms",
    ]
    assert case["case"]["assigned_agent_id"] == "ava"

    # Authorization: cid serves billing only.
    assert cid.get(f"/desk/api/cases/{case_id}").status_code == 404  # not even "exists"
    assert cid.get("/desk/api/queues/general").status_code == 403

    # ava replies on the customer's latest channel (SMS): it reaches the SMS provider.
    sent = ava.post(f"/desk/api/cases/{case_id}/reply", json={"text": "It is on its way, Ana."})
    assert sent.status_code == 202, sent.text
    assert sent.json()["channel"] == "sms"
    delivered = eventually(
        lambda: providers.sent_to("twilio"), timeout_s=60, what="the SMS at the provider"
    )
    assert delivered[0].form["Body"] == ["It is on its way, Ana."]
    assert delivered[0].form["To"] == ["+15550102345"]

    assert (
        ava.post(
            f"/desk/api/cases/{case_id}/notes", json={"text": "Courier says Tuesday"}
        ).status_code
        == 204
    )
    assert (
        ava.post(f"/desk/api/cases/{case_id}/transfer", json={"agent_id": "ben"}).status_code == 204
    )

    def ben_sees_it():  # type: ignore[no-untyped-def]
        answer = ben.get(f"/desk/api/cases/{case_id}")
        if answer.status_code != 200:
            return None
        body = answer.json()
        return body if body["case"]["assigned_agent_id"] == "ben" else None

    for_ben = eventually(ben_sees_it, timeout_s=60, what="the case with ben")
    kinds = [(t["kind"], t.get("system_type")) for t in for_ben["context"]["recent_timeline"]]
    assert ("reply", None) in kinds
    assert ("system", "note") in kinds
    assert ("system", "reassignment") in kinds
    assert for_ben["case"]["effort"]["transfers"] == 1
    assert for_ben["context"]["story_so_far"]
    assert (
        ben.post(f"/desk/api/cases/{case_id}/resolve", json={"reason": "delivered"}).status_code
        == 204
    )
    for client in (ava, ben, cid):
        client.close()
