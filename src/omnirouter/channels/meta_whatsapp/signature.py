"""Meta webhook security: X-Hub-Signature-256 and the subscription handshake.

Meta signs every notification with HMAC-SHA256 of the raw request body, keyed with the app
secret, sent as ``X-Hub-Signature-256: sha256=<hex>``. Subscribing a callback URL is a GET with
``hub.mode=subscribe``, ``hub.verify_token`` (the token we configured in the app dashboard) and
``hub.challenge``, which must be echoed back.
(https://developers.facebook.com/docs/graph-api/webhooks/getting-started)
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

SIGNATURE_PREFIX = "sha256="


def meta_signature(app_secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value Meta sends for ``body``."""
    digest = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_PREFIX}{digest}"


def signature_matches(app_secret: str, body: bytes, header: str) -> bool:
    """True when ``header`` is Meta's signature of ``body`` (constant-time comparison)."""
    expected = meta_signature(app_secret, body)
    # Hex digits are case-insensitive; Meta sends lower case, but do not depend on it.
    return hmac.compare_digest(expected.encode(), header.strip().lower().encode())


def subscription_challenge(params: Mapping[str, str], verify_token: str) -> str | None:
    """The challenge to echo when ``params`` are a valid subscription request, else None."""
    if params.get("hub.mode") != "subscribe":
        return None
    offered = params.get("hub.verify_token", "")
    if not hmac.compare_digest(offered.encode(), verify_token.encode()):
        return None
    return params.get("hub.challenge")
