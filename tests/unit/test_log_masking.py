"""Logging as every process configures it writes no phone number, e-mail address or message
text: structlog's own lines, standard-library records from the client libraries, and
tracebacks, in both the JSON and the console format."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Literal

import pytest
import structlog
from pydantic import ValidationError

from omnirouter.events import InteractionEvent
from omnirouter.logs import configure_logging, get_logger
from omnirouter.settings import LogSettings

PHONE = "+15550102345"
EMAIL = "dee.dee@example.com"
TEXT = "my card was charged twice, please refund"
CUSTOMER_ID = "cus_0a1b2c3d4e5f60718293a4b5"
EVENT_ID = "6f1c2b9e-3f55-4a61-9d39-1c2a8f0e7b42"
CASE_ID = f"case_0123456789abcdef.{CUSTOMER_ID}"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide state; put it back for the other tests."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    config = structlog.get_config()
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.configure(**config)


def _log_a_customer_message(fmt: Literal["json", "console"], *, mask: bool) -> str:
    out = io.StringIO()
    configure_logging(LogSettings(format=fmt, mask_personal_data=mask), stream=out)
    log = get_logger("omnirouter.test.privacy")
    log.info(
        "inbound message",
        event_id=EVENT_ID,
        customer_id=CUSTOMER_ID,
        case_id=CASE_ID,
        sender=f"phone:{PHONE}",
        identifiers=[f"email:{EMAIL}", f"phone:{PHONE}"],
        text=TEXT,
        content={"subject": "Refund", "text": TEXT},
    )
    # A client library's record, formatted by the standard library (%-args), not by structlog.
    logging.getLogger("aiokafka.consumer").warning(
        "record from %s (%s) could not be processed", EMAIL, PHONE
    )
    # A validation error quotes the input it rejected, identifiers included.
    try:
        InteractionEvent.model_validate(
            {"channel": "carrier-pigeon", "identifiers": [{"kind": "email", "value": EMAIL}]}
        )
    except ValidationError:
        log.exception("record rejected", event_id=EVENT_ID)
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["json", "console"])
@pytest.mark.usefixtures("restore_logging")
def test_logs_hold_no_phone_email_or_message_text(fmt: Literal["json", "console"]) -> None:
    written = _log_a_customer_message(fmt, mask=True)
    assert "inbound message" in written
    assert "record from" in written
    assert "record rejected" in written
    assert "ValidationError" in written  # the traceback is there, masked
    for secret in (PHONE, "5550102345", EMAIL, "dee.dee", TEXT, "charged twice"):
        assert secret not in written, f"{secret!r} leaked in the {fmt} logs"
    # What an operator needs to find the customer stays readable.
    for kept in (EVENT_ID, CUSTOMER_ID, CASE_ID, "d***@example.com", "[phone]"):
        assert kept in written
    assert f"[redacted {len(TEXT)} chars]" in written


@pytest.mark.usefixtures("restore_logging")
def test_masking_can_be_turned_off_for_local_debugging() -> None:
    written = _log_a_customer_message("json", mask=False)
    assert PHONE in written
    assert EMAIL in written
    assert TEXT in written


def test_masking_is_on_unless_switched_off() -> None:
    assert LogSettings().mask_personal_data is True
