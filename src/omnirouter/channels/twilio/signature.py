"""X-Twilio-Signature, computed exactly as Twilio does.

Twilio signs the full URL it requested followed by every POST parameter, sorted by name, each
name immediately followed by its value; HMAC-SHA1 with the account's auth token, base64.
(https://www.twilio.com/docs/usage/webhooks/webhooks-security)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable


def twilio_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """The signature Twilio sends for a POST of ``params`` to ``url``."""
    # Sorted by name; a name repeated keeps its values in sorted order too, as Twilio's own
    # validators do.
    payload = url + "".join(f"{k}{v}" for k, v in sorted(params))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def signature_matches(
    auth_token: str, url: str, params: Iterable[tuple[str, str]], signature: str
) -> bool:
    """True when ``signature`` is Twilio's for this request (constant-time comparison)."""
    expected = twilio_signature(auth_token, url, list(params))
    return hmac.compare_digest(expected.encode(), signature.encode())
