"""Meta WhatsApp Cloud API: the subscription handshake and ``messages`` webhooks, and replies."""
