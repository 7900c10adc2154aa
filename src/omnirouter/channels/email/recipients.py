"""Who an inbound e-mail was addressed to, as each provider reports it (pure).

The envelope recipients come first: they are the addresses the mail was actually delivered to
(a Bcc to support@ appears nowhere else); the To and Cc headers follow for providers or modes
that leave the envelope out. The tenant directory takes the first one it knows.
"""

from __future__ import annotations

from omnirouter.channels.email import mime
from omnirouter.channels.email.webhooks import Form

__all__ = ["mailgun_recipients", "sendgrid_recipients"]


def sendgrid_recipients(form: Form) -> list[str]:
    """SendGrid Inbound Parse (parsed or raw): ``envelope.to``, then the To and Cc headers."""
    found: list[str] = []
    envelope = form.json("envelope")
    to = envelope.get("to") if isinstance(envelope, dict) else None
    if isinstance(to, list):
        found.extend(address for address in to if isinstance(address, str))
    elif isinstance(to, str):
        found.append(to)
    # Raw mode posts the whole message in "email" instead of a "headers" block.
    headers = mime.header_block(form.fields.get("headers") or form.fields.get("email") or b"")
    for name in ("to", "cc"):
        value = form.text(name) or mime.header(headers, name)
        if value:
            found.append(value)
    return found


def mailgun_recipients(form: Form) -> list[str]:
    """A Mailgun route's post: ``recipient`` (comma-separated), then the To/Cc headers."""
    found = [form.text("recipient") or ""]
    pairs = form.json("message-headers")
    for pair in pairs if isinstance(pairs, list) else ():
        if (
            isinstance(pair, list)
            and len(pair) == 2
            and isinstance(pair[0], str)
            and isinstance(pair[1], str)
            and pair[0].lower() in ("to", "cc")
        ):
            found.append(pair[1])
    found.extend(value for value in (form.text("To"), form.text("Cc")) if value)
    return [value for value in found if value]
