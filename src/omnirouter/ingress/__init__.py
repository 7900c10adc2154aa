"""The ingress gateway: provider webhooks, e-mail and web chat in, interaction events out."""
