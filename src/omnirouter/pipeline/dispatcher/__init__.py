"""The outbound dispatcher: agents' replies delivered through each customer's channel.

``senders`` maps a channel to its sender (``channels/<name>/outbound.py``); ``delivery`` holds
the retry loop and the status and dead-letter records (pure); ``claims`` keeps a reply from
being sent twice; ``worker`` is the thin faust agent around them.
"""

from omnirouter.pipeline.dispatcher.delivery import (
    DeliveryOutcome,
    backoff_delay,
    backoff_schedule,
    deliver_with_retries,
    status_record,
)
from omnirouter.pipeline.dispatcher.senders import SenderChoice, select_sender
from omnirouter.pipeline.dispatcher.worker import DispatcherWorker

__all__ = [
    "DeliveryOutcome",
    "DispatcherWorker",
    "SenderChoice",
    "backoff_delay",
    "backoff_schedule",
    "deliver_with_retries",
    "select_sender",
    "status_record",
]
