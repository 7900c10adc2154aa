"""The Python client for custom desktops, against the whole running router."""

from __future__ import annotations

import pytest

from integration.desktop.test_desk_api import send_sms
from omnirouter.desktop.client import DeskClient, DeskError
from support.waiting import eventually

pytestmark = pytest.mark.integration


def test_a_custom_desktop_signs_in_takes_an_offer_and_replies(router, providers) -> None:  # type: ignore[no-untyped-def]
    router.add_agent("dee", "dee-secret", queues="general", name="Dee")
    with pytest.raises(DeskError) as wrong:
        DeskClient(router.base_url, "dee", "nope")
    assert wrong.value.status == 401

    with DeskClient(router.base_url, "dee", "dee-secret") as desk:
        assert desk.me()["name"] == "Dee"
        desk.set_presence("available")
        assert send_sms(router, "Hello from my phone").status_code == 200
        offer = eventually(desk.offers, timeout_s=60, what="an offer")[0]
        desk.accept(offer["case_id"])
        case = desk.case(offer["case_id"])
        assert [
            t["text"] for t in case["context"]["recent_timeline"] if t["kind"] == "message"
        ] == ["Hello from my phone"]
        assert desk.reply(offer["case_id"], "Hi! How can I help?")["channel"] == "sms"
        eventually(
            lambda: providers.sent_to("twilio"), timeout_s=60, what="the reply at the provider"
        )
        desk.resolve(offer["case_id"], "answered")
        with pytest.raises(DeskError) as refused:
            desk.accept(offer["case_id"])
        assert refused.value.status == 409
