"""Realistic multi-channel traffic, pre-built so the generator only splices in an event id.

A population of customers, each reachable by e-mail, phone (SMS and WhatsApp) and web chat.
Every event picks a customer and a channel, so customers come back on other channels; a share
of events carries two identifiers (a chat whose pre-chat form gives the e-mail, an e-mail signed
with a phone number), which is how identity learns two records are one person and merges them;
a small share comes from web-chat visitors never seen before (new customers, new cases).

Each template is the encoded ``InteractionEvent`` (about 1 KB) split at a placeholder id: the
generator joins the parts with the real id, which costs a ``bytes.join`` instead of a pydantic
model and a JSON encoding per event.
"""

from __future__ import annotations

import random
import uuid
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime

from omnirouter.events import (
    Channel,
    Content,
    Direction,
    Identifier,
    IdentifierKind,
    InteractionEvent,
    ProviderRefs,
    encode,
)

__all__ = [
    "MERGE_SHARE",
    "NEW_CUSTOMER_SHARE",
    "PLACEHOLDER",
    "Template",
    "Traffic",
    "build_traffic",
]

PLACEHOLDER = "ffffffff-ffff-4fff-bfff-fffffffffffe"
"""Stands where each event's own id goes (event_id, provider message id, new visitors' ids)."""
_PLACEHOLDER_BYTES = PLACEHOLDER.encode()

MERGE_SHARE = 0.05
"""Events carrying two of a customer's identifiers (what makes identity merge records)."""
NEW_CUSTOMER_SHARE = 0.02
"""Events from web-chat visitors never seen before."""
_CHANNEL_WEIGHTS = ((Channel.EMAIL, 0.35), (Channel.SMS, 0.20), (Channel.WHATSAPP, 0.25))
# The rest of the traffic is web chat.
_CHANNELS = (Channel.EMAIL, Channel.SMS, Channel.WHATSAPP, Channel.WEBCHAT)
_TARGET_EVENT_BYTES = 1000

_FIRST = ("Ana", "Ben", "Chloé", "Dev", "Eva", "Femi", "Gus", "Hana", "Ivan", "Jia", "Kofi", "Lea")
_LAST = ("Silva", "Okafor", "Martin", "Patel", "Novak", "Adeyemi", "Berg", "Sato", "Rossi", "Kim")
_SUBJECTS = (
    "Where is my parcel?",
    "Charged twice",
    "Cannot log in",
    "Cancel subscription",
    "Change delivery address",
    "Refund for damaged item",
)
_SENTENCES = (
    "Hi, my parcel was due on Monday and it never arrived, the tracking page has not moved.",
    "I was charged twice for my last invoice and I would like one of the payments refunded.",
    "The password reset link you sent me is broken, it says the token expired straight away.",
    "Please cancel my subscription at the end of the month, I am moving abroad next week.",
    "I already wrote about this by e-mail yesterday and nobody has answered me so far.",
    "Could you change the delivery address on order 1182 to my office instead of my home?",
    "The item arrived damaged, the box was crushed and the screen has a crack across it.",
    "I called your hotline twice and was disconnected both times after waiting a long time.",
    "My account shows a balance I do not recognise, can someone explain the extra charge?",
    "Thanks for the quick answer last time, I have one more question about the same order.",
)
_TIERS = ("", "", "", "gold", "vip")
_LANGUAGES = ("en", "en", "en", "es", "fr", "de")


@dataclass(frozen=True, slots=True)
class Template:
    """One pre-encoded event: key and value parts to join with the event's id."""

    key_parts: tuple[bytes, ...]
    value_parts: tuple[bytes, ...]
    partition: int | None
    """Fixed partition for a fixed key; None when the key contains the id."""

    def key(self, event_id: bytes) -> bytes:
        """The Kafka key of the event with ``event_id``."""
        return event_id.join(self.key_parts)

    def value(self, event_id: bytes) -> bytes:
        """The Kafka value of the event with ``event_id``."""
        return event_id.join(self.value_parts)


def partition_for(key: bytes, partitions: int) -> int:
    """A stable partition for ``key`` (same key, same partition, so per-sender order holds)."""
    return zlib.crc32(key) % partitions


@dataclass(frozen=True)
class Traffic:
    """The pre-built traffic: first contacts (to prime the population) and the mixed stream."""

    first_contacts: tuple[Template, ...]
    mix: tuple[Template, ...]
    customers: int

    def mean_event_bytes(self) -> float:
        """Average size of an event of the mix, in bytes."""
        sizes = [len(t.value(_PLACEHOLDER_BYTES)) for t in self.mix[:2000]]
        return sum(sizes) / max(1, len(sizes))


@dataclass(frozen=True, slots=True)
class _Person:
    name: str
    email: str
    phone: str
    visitor: str
    tier: str
    language: str


def _person(index: int, rng: random.Random) -> _Person:
    first = _FIRST[index % len(_FIRST)]
    last = _LAST[(index // len(_FIRST)) % len(_LAST)]
    return _Person(
        name=f"{first} {last}",
        email=f"{first.lower()}.{last.lower()}.{index}@example.com",
        # 555-01xx numbers are reserved for fiction; possible (not necessarily valid) is enough.
        phone=f"+1555{index % 10_000_000:07d}",
        visitor=f"v-{index:08d}",
        tier=rng.choice(_TIERS),
        language=rng.choice(_LANGUAGES),
    )


def _text(rng: random.Random, subject: str, target: int) -> str:
    parts = [f"About: {subject}."]
    while sum(len(p) + 1 for p in parts) < target:
        parts.append(rng.choice(_SENTENCES))
    return " ".join(parts)[:target]


def _event(
    person: _Person,
    channel: Channel,
    identifiers: tuple[Identifier, ...],
    rng: random.Random,
    now: datetime,
    text_chars: int,
) -> InteractionEvent:
    subject = rng.choice(_SUBJECTS)
    provider = {
        Channel.EMAIL: "mailgun",
        Channel.SMS: "twilio",
        Channel.WHATSAPP: "meta",
        Channel.WEBCHAT: "webchat",
    }[channel]
    attributes = {"language": person.language, "source": "bench"}
    if person.tier:
        attributes["tier"] = person.tier
    return InteractionEvent(
        event_id=uuid.UUID(PLACEHOLDER),
        occurred_at=now,
        received_at=now,
        channel=channel,
        direction=Direction.INBOUND,
        identifiers=identifiers,
        display_name=person.name,
        content=Content(
            text=_text(rng, subject, text_chars),
            subject=subject if channel is Channel.EMAIL else None,
            language=person.language,
        ),
        provider=ProviderRefs(
            provider=provider,
            message_id=f"<{PLACEHOLDER}@{provider}.bench>",
            conversation_id=f"conv-{person.visitor}" if channel is Channel.WEBCHAT else None,
        ),
        attributes=attributes,
    )


def _template(
    person: _Person,
    channel: Channel,
    identifiers: tuple[Identifier, ...],
    rng: random.Random,
    now: datetime,
    partitions: int,
) -> Template:
    # Two passes: measure the envelope with a short text, then fill the text to the target.
    probe = _event(person, channel, identifiers, rng, now, 100)
    overhead = len(encode(probe)) - len(probe.content.text.encode())
    event = _event(person, channel, identifiers, rng, now, max(40, _TARGET_EVENT_BYTES - overhead))
    key = event.routing_key.encode()
    key_parts = tuple(key.split(_PLACEHOLDER_BYTES))
    partition = partition_for(key, partitions) if len(key_parts) == 1 else None
    return Template(key_parts, tuple(encode(event).split(_PLACEHOLDER_BYTES)), partition)


def _identifiers(person: _Person, channel: Channel) -> tuple[Identifier, ...]:
    if channel is Channel.EMAIL:
        return (Identifier(kind=IdentifierKind.EMAIL, value=person.email),)
    if channel is Channel.WEBCHAT:
        return (Identifier(kind=IdentifierKind.CHAT_VISITOR, value=person.visitor),)
    network = "whatsapp" if channel is Channel.WHATSAPP else None
    return (Identifier(kind=IdentifierKind.PHONE, value=person.phone, provider=network),)


def build_traffic(
    customers: int, *, partitions: int, mix_size: int = 50_000, seed: int = 7
) -> Traffic:
    """Templates for ``customers`` people: each one's first contacts, and a shuffled mix."""
    rng = random.Random(seed)  # noqa: S311 - reproducible traffic, not cryptography
    now = datetime.now(UTC)
    people = [_person(i, rng) for i in range(customers)]

    first_contacts = [
        _template(p, c, _identifiers(p, c), rng, now, partitions) for p in people for c in _CHANNELS
    ]
    mix: list[Template] = []
    merge_cache: dict[tuple[int, bool], Template] = {}
    for n in range(mix_size):
        draw = rng.random()
        if draw < NEW_CUSTOMER_SHARE:
            # The visitor id holds the event id, so every one of these is a person never seen.
            visitor = _Person("New Visitor", "", "", f"new-{PLACEHOLDER}", "", "en")
            ids = _identifiers(visitor, Channel.WEBCHAT)
            mix.append(_template(visitor, Channel.WEBCHAT, ids, rng, now, partitions))
            continue
        index = rng.randrange(customers)
        if draw < NEW_CUSTOMER_SHARE + MERGE_SHARE:
            chat_form = n % 2 == 0
            cached = merge_cache.get((index, chat_form))
            if cached is None:
                cached = _merging_template(people[index], chat_form, rng, now, partitions)
                merge_cache[(index, chat_form)] = cached
            mix.append(cached)
            continue
        channel = _pick_channel(rng.random())
        mix.append(first_contacts[index * len(_CHANNELS) + _CHANNELS.index(channel)])
    return Traffic(tuple(first_contacts), tuple(mix), customers)


def _merging_template(
    person: _Person, chat_form: bool, rng: random.Random, now: datetime, partitions: int
) -> Template:
    if chat_form:  # a chat whose pre-chat form asked for the e-mail address
        channel, other = Channel.WEBCHAT, Channel.EMAIL
    else:  # an e-mail signed with the phone number
        channel, other = Channel.EMAIL, Channel.SMS
    ids = (*_identifiers(person, channel), *_identifiers(person, other))
    return _template(person, channel, ids, rng, now, partitions)


def _pick_channel(draw: float) -> Channel:
    for channel, weight in _CHANNEL_WEIGHTS:
        if draw < weight:
            return channel
        draw -= weight
    return Channel.WEBCHAT
