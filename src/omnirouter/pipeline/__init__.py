"""Stream workers (faust-streaming): identity, cases, routing; thin wiring around pure logic."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from omnirouter.pipeline.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    # Imported lazily: settings import the identity policy from this package, and every CLI
    # command would otherwise pay for importing faust.
    if name == "create_app":
        from omnirouter.pipeline.app import create_app

        return create_app
    raise AttributeError(name)
