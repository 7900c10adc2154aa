"""omnirouter's HTTP API (FastAPI): identity administration, and later the gateway and desktop."""

from omnirouter.http.app import create_http_app

__all__ = ["create_http_app"]
