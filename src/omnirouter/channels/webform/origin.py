"""Which pages may post forms: the request's Origin (or Referer) against an allow-list (pure).

Entries are bare hosts ("www.example.com": any scheme and port) or origins
("https://www.example.com": exactly that scheme, host and port). Browsers send Origin on every
form POST; Referer is the fallback for older ones. This keeps other sites from embedding our
forms; it is no authentication (any non-browser client can send any header).
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit


def _origin(url: str) -> tuple[str, str] | None:
    """(origin, host) of a URL, lower-cased; None when it names no host (e.g. "null")."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not host:
        return None
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    netloc = host if port is None or port == default else f"{host}:{port}"
    return f"{parts.scheme.lower()}://{netloc}", host


def origin_allowed(origin: str | None, referer: str | None, allowed: Iterable[str]) -> bool:
    """True when the allow-list is empty or the posting page's origin is on it."""
    entries = [entry.strip().lower().rstrip("/") for entry in allowed if entry.strip()]
    if not entries:
        return True
    page = _origin(origin) if origin else None
    if page is None and referer:
        page = _origin(referer)
    if page is None:
        return False
    page_origin, page_host = page
    for entry in entries:
        if "://" in entry:
            listed = _origin(entry)
            if listed is not None and listed[0] == page_origin:
                return True
        elif entry == page_host:
            return True
    return False
