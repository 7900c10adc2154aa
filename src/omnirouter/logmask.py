"""Personal data out of the logs: a structlog processor that masks it before rendering.

Logs travel further than Redis (shippers, tickets, screenshots) and outlive an erasure, so
phone numbers, e-mail addresses and message text never reach them in the clear:

- fields whose name says they carry what a person wrote (``text``, ``body``, ``subject``,
  ``content``, ``*_text`` …) become ``"[redacted N chars]"``;
- every other string, at any depth, is scanned: e-mail addresses keep their first character
  and domain (``a***@example.com``), phone numbers (E.164 and the usual national and
  international spellings) become ``[phone]``.

Ids stay readable: UUIDs (event ids), ISO dates and IPv4 addresses are recognised first and
left alone, and digits glued to letters (``cus_3f…``, ``case_…``, hex digests) are never taken
for a phone number. Over-masking a stray long number is the accepted price of never leaking one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from enum import Enum
from typing import Any
from uuid import UUID

from pydantic import BaseModel
from structlog.typing import EventDict, WrappedLogger

__all__ = ["mask_event_dict", "mask_personal_data", "mask_text", "redacted"]

# Field names that hold what a customer or agent wrote (the whole value is hidden, not scanned:
# free text has no shape a pattern could recognise).
_TEXT_FIELD = re.compile(
    r"^(?:.*_)?(?:text|texts|body|subject|content|html|message|transcript|snippet|preview"
    r"|caption|story|story_so_far|fragment|fragments|note|reply|quote|quoted)$",
    re.IGNORECASE,
)
# structlog's own keys: the message itself is scanned, never redacted whole.
_NEVER_REDACTED = frozenset({"event", "level", "logger", "timestamp", "exception", "stack"})
# exc_info is turned into text (and then scanned) before this processor runs; the meta keys of
# structlog's ProcessorFormatter are not data.
_NOT_SCANNED = frozenset({"timestamp", "level", "logger", "exc_info", "_record", "_from_structlog"})

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.\-]"
_DOMAIN = r"[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+"
_SEP = r"[\s.\-()]{0,3}"
_EMAIL = rf"(?P<email>(?P<first>{_ATEXT}){_ATEXT}*@(?P<domain>{_DOMAIN}))"
# Alternatives are tried in order at each position: what must be kept is recognised before the
# phone patterns could eat its digits.
_KEPT_AND_PHONES = (
    r"(?P<uuid>(?<![0-9A-Za-z])[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}"
    r"-[0-9a-fA-F]{12}(?![0-9A-Za-z]))"
    r"|(?P<date>(?<![0-9A-Za-z])(?:19|20)\d\d-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])"
    r"(?:[T ]\d\d:\d\d(?::\d\d(?:[.,]\d+)?)?(?:Z|[+-]\d\d:?\d\d)?)?(?![0-9]))"
    r"|(?P<ip>(?<![0-9A-Za-z.])\d{1,3}(?:\.\d{1,3}){3}(?![0-9.]))"
    # "+" marks a phone number even when glued to a word ("whatsapp:+1…", "tel+44…").
    rf"|(?P<intl>\+{_SEP}\d(?:{_SEP}\d){{5,14}}(?!\d))"
    # Without "+", only a run that stands on its own: not the digits of an id or a digest.
    rf"|(?P<national>(?<![0-9A-Za-z_])\(?\d(?:{_SEP}\d){{7,14}}(?![0-9A-Za-z_]))"
)
_WITH_EMAILS = re.compile(f"{_EMAIL}|{_KEPT_AND_PHONES}")
# Without an "@" the e-mail alternative can only fail, slowly (it rescans each run of
# address characters from every position): strings without one skip it.
_PHONES_ONLY = re.compile(f"(?P<email>(?!))|{_KEPT_AND_PHONES}")
_DIGIT = re.compile(r"\d")


def redacted(text: str) -> str:
    """What a message text becomes in the logs: its length, nothing of its content."""
    return f"[redacted {len(text)} chars]"


def _replacement(match: re.Match[str]) -> str:
    if match.group("email") is not None:
        return f"{match.group('first')}***@{match.group('domain')}"
    if match.group("intl") is not None or match.group("national") is not None:
        return "[phone]"
    return match.group(0)  # an id, a date or an address: kept as it is


def mask_text(text: str) -> str:
    """``text`` with every e-mail address and phone number in it masked."""
    # Cheap pre-check: most log strings hold neither an "@" nor a run of digits.
    if "@" in text:
        return _WITH_EMAILS.sub(_replacement, text)
    if _DIGIT.search(text):
        return _PHONES_ONLY.sub(_replacement, text)
    return text


_KEPT_AS_IS = (bool, int, float, UUID, datetime, date, time, timedelta, type(None))


def _mask(value: Any, *, hide: bool) -> Any:
    if isinstance(value, str):
        return redacted(value) if hide else mask_text(value)
    if isinstance(value, Enum):
        return value
    if isinstance(value, _KEPT_AS_IS):
        return value
    if isinstance(value, Mapping):
        # Nested keys are data too (a dict keyed by address); masking may merge two of them.
        return {mask_text(str(k)): _mask_field(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_mask(v, hide=hide) for v in value]
    if isinstance(value, BaseModel):
        # A logged event: its fields say which parts are message text.
        return _mask(value.model_dump(mode="json"), hide=hide)
    if isinstance(value, bytes | bytearray):
        return _mask(bytes(value).decode("utf-8", "replace"), hide=hide)
    # Anything else is rendered through repr(); mask exactly what would be printed.
    return _mask(repr(value), hide=hide)


def _mask_field(key: str, value: Any) -> Any:
    return _mask(value, hide=key not in _NEVER_REDACTED and bool(_TEXT_FIELD.match(key)))


def mask_event_dict(event_dict: EventDict) -> EventDict:
    """A copy of a log event with personal data masked at every depth."""
    return {
        key: value if key in _NOT_SCANNED else _mask_field(key, value)
        for key, value in event_dict.items()
    }


def mask_personal_data(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask phones, e-mail addresses and message text (see module doc)."""
    return mask_event_dict(event_dict)
