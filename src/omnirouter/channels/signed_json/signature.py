"""X-Omnirouter-Signature: HMAC-SHA256 of ``<timestamp>.<raw body>`` with a shared secret.

Signing the timestamp with the body lets the gateway refuse a captured request replayed later
(outside ``signature_tolerance_s``). The format is described in the package docstring.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_PREFIX = "sha256="


def signed_json_signature(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Omnirouter-Signature`` value for ``body`` sent at ``timestamp``."""
    message = timestamp.encode() + b"." + body
    return SIGNATURE_PREFIX + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_matches(secret: str, timestamp: str, body: bytes, header: str) -> bool:
    """True when ``header`` signs ``body`` at ``timestamp`` (constant-time comparison)."""
    expected = signed_json_signature(secret, timestamp, body)
    return hmac.compare_digest(expected.encode(), header.strip().lower().encode())


def parse_timestamp(header: str) -> int | None:
    """Unix seconds from ``X-Omnirouter-Timestamp``, or None when it is not an integer."""
    text = header.strip()
    return int(text) if text.isascii() and text.isdigit() else None


def is_fresh(timestamp: int, now: float, tolerance_s: int) -> bool:
    """True when ``timestamp`` is within ``tolerance_s`` of ``now``, either way."""
    return abs(now - timestamp) <= tolerance_s
