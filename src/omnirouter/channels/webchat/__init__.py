"""Web chat: an embeddable widget talking to the gateway over a WebSocket.

``protocol`` holds the frames and the visitor's message as an interaction event (pure);
``routes`` serves the widget, a demo page and the socket; ``static/`` is the widget itself.
Replies come back through Redis (``redis_keys.ChatKeys``) from the outbound dispatcher.
"""

from omnirouter.channels.webchat.protocol import (
    MAX_TEXT_CHARS,
    PROVIDER,
    AgentReply,
    ChatMessage,
    FrameError,
    Identify,
    VisitorProfile,
    connection_problem,
    normalize_message,
    parse_client_frame,
)

__all__ = [
    "MAX_TEXT_CHARS",
    "PROVIDER",
    "AgentReply",
    "ChatMessage",
    "FrameError",
    "Identify",
    "VisitorProfile",
    "connection_problem",
    "normalize_message",
    "parse_client_frame",
]
