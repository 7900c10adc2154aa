r"""Signed JSON: one endpoint for any other system (CRM, shop, IVR…) to report an interaction.

``POST /webhooks/signed/{key_id}`` with a JSON object describing one inbound interaction::

    {
      "message_id": "crm-4711",           # optional; the sender's id, retries share it
      "channel": "api",                   # optional: email|sms|whatsapp|voice|webchat|webform|api
      "kind": "message",                  # optional: message|call|transcript|form_submission
      "occurred_at": "2026-01-01T09:30:00Z",  # optional, RFC 3339 or unix seconds; default now
      "identifiers": [                    # required, at least one; raw values are fine
        {"kind": "email", "value": "ana@example.com"},
        {"kind": "phone", "value": "+1 555 010 2345"},
        {"kind": "social_handle", "value": "@ana", "provider": "twitter"}
      ],
      "display_name": "Ana Lima",         # optional
      "text": "Ticket #4711 reopened",    # optional
      "subject": "Refund",                # optional
      "thread_id": "ticket-4711",         # optional, groups a conversation
      "in_reply_to": "crm-4710",          # optional
      "attributes": {"tier": "gold"}      # optional profile hints (string values)
    }

Unknown fields are refused. Identifier kinds: email, phone, chat_visitor, social_handle,
account_number, external_id. The key id names the sender and must be a provider name
(lower-case letters, digits, ".", "_", "-"); a ``message_id`` is deduplicated per key id.

Headers:

- ``X-Omnirouter-Timestamp``: unix seconds when the request was signed; refused (401) when more
  than ``signature_tolerance_s`` away from the gateway's clock;
- ``X-Omnirouter-Signature``: ``sha256=`` + hex HMAC-SHA256 of ``<timestamp>.<raw body>``
  keyed with ``signing_secrets[key_id]``.

Answers: 200 once the event is in Kafka (also for a retry already published); 401 missing
headers or stale timestamp; 403 unknown key id or wrong signature; 422 (and dead-lettered) a
body that is no interaction; 503 try again later (nothing configured, or Kafka unavailable).

Example, signing with openssl::

    SECRET='crm-shared-secret'
    BODY='{"message_id":"crm-4711","identifiers":[{"kind":"email","value":"ana@example.com"}]}'
    TS=$(date +%s)
    SIG=$(printf '%s.%s' "$TS" "$BODY" | openssl dgst -sha256 -hmac "$SECRET" | sed 's/^.*= //')
    curl -sS https://cx.example.com/webhooks/signed/crm \
      -H 'Content-Type: application/json' \
      -H "X-Omnirouter-Timestamp: $TS" \
      -H "X-Omnirouter-Signature: sha256=$SIG" \
      --data-binary "$BODY"

Sign the exact bytes sent: re-serializing the JSON after signing breaks the signature.
"""
