"""Inbound e-mail: SendGrid Inbound Parse and Mailgun routes webhooks, and an SMTP listener."""
