"""One folder per provider, each with the same anatomy.

- ``signature.py``: verifies the provider's request signature exactly as the provider signs;
- ``normalize.py`` (or one module per message kind): the provider's payload in, an
  ``InteractionEvent`` out, or ``NormalizationError`` with the reason (pure);
- ``routes.py``: the thin FastAPI router that wires the two to the gateway's ``Intake``;
- ``outbound.py``: the sender the dispatcher uses to reply on that channel.

Adding a channel is copying a folder and registering its router in ``ingress.app``.
"""

from omnirouter.channels.errors import NormalizationError

__all__ = ["NormalizationError"]
