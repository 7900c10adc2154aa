"""omnirouter: every channel a customer uses, one customer, one story, routed to the right agent."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from omnirouter.sdk import Publisher, PublishError, PublishReceipt

__all__ = ["PublishError", "PublishReceipt", "Publisher", "__version__"]


def __getattr__(name: str) -> Any:
    # The SDK is imported on first use: ``import omnirouter`` stays light for the CLI.
    if name in {"Publisher", "PublishError", "PublishReceipt"}:
        from omnirouter import sdk

        return getattr(sdk, name)
    raise AttributeError(name)
