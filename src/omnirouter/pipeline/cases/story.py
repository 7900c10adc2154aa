"""The story so far, in the customer's own words (pure).

Each inbound message contributes one fragment: its own new words, without quoted replies,
signatures or greetings. The story is those fragments in order, with the channel each came by,
so an agent reads in seconds what the customer has already said everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

FRAGMENT_CHARS = 240
_QUOTE_HEADER = re.compile(
    r"^\s*(On .{0,200}wrote:|-{2,}\s*Original Message\s*-{2,}|From: .+)$", re.I
)
_SIGNATURE = re.compile(
    r"^\s*(--\s*|Sent from my .+|Best regards,?|Kind regards,?|Regards,?|Thanks,?|Cheers,?)$", re.I
)
# A line that is only a greeting: the word, up to three more (a name, "team"), punctuation.
_GREETING = re.compile(
    r"^\s*(hi|hello|hey|dear|good (morning|afternoon|evening))\b"
    r"([ \t]+[\w.'-]+){0,3}[ \t]*[,!:]?\s*$",
    re.I,
)
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class StoryFragment:
    """What one message added to the story."""

    at_ms: int
    channel: str
    text: str


def own_words(text: str) -> str:
    """The customer's new words in a message: quoted history, signature and greeting removed."""
    kept: list[str] = []
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if line.lstrip().startswith(">") or _QUOTE_HEADER.match(line):
            break  # everything below a reply header is the earlier conversation
        if _SIGNATURE.match(line):
            break
        if not kept and not line.strip():
            continue
        # A greeting alone on its line is dropped, but never a message's only line.
        has_more = any(rest.strip() for rest in lines[index + 1 :])
        if not kept and has_more and _GREETING.match(line):
            continue
        kept.append(line)
    return _SPACES.sub(" ", " ".join(kept)).strip()


def story_fragment(text: str, subject: str | None = None) -> str:
    """A message's contribution to the story, at most :data:`FRAGMENT_CHARS` characters."""
    words = own_words(text) or (subject or "").strip()
    if len(words) <= FRAGMENT_CHARS:
        return words
    cut = words[: FRAGMENT_CHARS - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut) + "…"


def render_story(fragments: Sequence[StoryFragment], *, max_chars: int = 4000) -> str:
    """The story so far: each fragment with its channel, oldest first."""
    lines: list[str] = []
    previous_channel = None
    for fragment in fragments:
        if not fragment.text:
            continue
        via = f"by {fragment.channel}" if fragment.channel != previous_channel else "then"
        lines.append(f"[{via}] {fragment.text}")
        previous_channel = fragment.channel
    story = "\n".join(lines)
    if len(story) <= max_chars:
        return story
    if max_chars <= 1:
        return "…"[:max_chars]
    return "…" + story[-(max_chars - 1) :]
