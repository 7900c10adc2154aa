"""The story so far: the customer's own words from each message, with the channel it came by."""

from __future__ import annotations

import pytest

from omnirouter.pipeline.cases.story import (
    FRAGMENT_CHARS,
    StoryFragment,
    own_words,
    render_story,
    story_fragment,
)

# --- own words -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Hi Ana,\nMy parcel never arrived.",
        "Hello!\nMy parcel never arrived.",
        "Dear support team,\nMy parcel never arrived.",
        "hey there\nMy parcel never arrived.",
    ],
)
def test_own_words_drop_a_leading_greeting_line(text: str) -> None:
    assert own_words(text) == "My parcel never arrived."


def test_own_words_keep_a_greeting_word_after_the_first_line() -> None:
    assert own_words("My parcel never arrived.\nHello?") == "My parcel never arrived. Hello?"


@pytest.mark.parametrize(
    "tail",
    [
        "> When did you order?\n> Thanks, Bob",
        "   > indented quote",
        "On Mon, 4 Mar 2024 at 10:00, Support <help@example.com> wrote:\n> old reply",
        "-----Original Message-----\nFrom: Support\nSubject: Your order",
        "From: Support <help@example.com>\nSent: Monday",
    ],
)
def test_own_words_stop_at_quoted_history(tail: str) -> None:
    assert own_words(f"Still nothing arrived.\n\n{tail}") == "Still nothing arrived."


@pytest.mark.parametrize(
    "signature",
    ["--\nAna Silva\n+1 555 0102", "-- \nAna", "Best regards,\nAna", "Sent from my iPhone"],
)
def test_own_words_stop_at_a_signature(signature: str) -> None:
    assert own_words(f"Still nothing arrived.\n{signature}") == "Still nothing arrived."


def test_own_words_collapse_whitespace_and_join_lines() -> None:
    text = "  My   order\n\n\tis\tlate  \n\n and   I am  waiting.  "
    assert own_words(text) == "My order is late and I am waiting."


def test_own_words_of_a_whole_email_reply() -> None:
    text = (
        "Hi team,\n"
        "\n"
        "The courier says it was delivered,\n"
        "but it was not.\n"
        "\n"
        "Best regards,\n"
        "Ana\n"
        "\n"
        "On Tue, 5 Mar 2024, Support <help@example.com> wrote:\n"
        "> Your parcel was delivered.\n"
    )
    assert own_words(text) == "The courier says it was delivered, but it was not."


@pytest.mark.parametrize("text", ["", "   \n  ", "> only a quote", "Hi Ana,\n-- \nAna"])
def test_own_words_of_a_message_with_nothing_new_are_empty(text: str) -> None:
    assert own_words(text) == ""


@pytest.mark.parametrize(
    "text", ["Hi, my parcel never arrived.", "Hey where is my refund?", "Hello I need help"]
)
def test_own_words_keep_a_one_line_message_that_starts_with_a_greeting(text: str) -> None:
    assert own_words(text) != ""


def test_own_words_drop_the_greeting_after_leading_blank_lines() -> None:
    assert own_words("\nHi Ana,\nMy parcel is late.") == "My parcel is late."


# --- one message's fragment ----------------------------------------------------------------


def test_fragment_is_the_own_words_when_short() -> None:
    assert story_fragment("Hi,\nMy parcel is late.\n-- \nAna", "Order 123") == "My parcel is late."


@pytest.mark.parametrize(
    ("text", "subject", "expected"),
    [
        ("> quoted only", "  Where is order 123?  ", "Where is order 123?"),
        ("", "Where is order 123?", "Where is order 123?"),
        ("", None, ""),
        ("> quoted only", None, ""),
    ],
)
def test_fragment_falls_back_to_the_subject_without_own_words(
    text: str, subject: str | None, expected: str
) -> None:
    assert story_fragment(text, subject) == expected


def test_fragment_of_exactly_the_limit_is_kept_whole() -> None:
    text = "a" * FRAGMENT_CHARS
    assert story_fragment(text) == text


def test_long_fragment_is_cut_at_a_word_boundary_with_an_ellipsis() -> None:
    words = " ".join(f"word{i:03d}" for i in range(100))
    fragment = story_fragment(words)
    assert len(fragment) <= FRAGMENT_CHARS
    assert fragment.endswith("…")
    kept = fragment.removesuffix("…")
    assert words.startswith(kept + " ")
    assert kept.split(" ")[-1] in words.split(" ")


def test_long_fragment_without_spaces_is_cut_hard_with_an_ellipsis() -> None:
    fragment = story_fragment("x" * 1000)
    assert fragment == "x" * (FRAGMENT_CHARS - 1) + "…"
    assert len(fragment) == FRAGMENT_CHARS


# --- the rendered story --------------------------------------------------------------------


def _fragment(at_ms: int, channel: str, text: str) -> StoryFragment:
    return StoryFragment(at_ms=at_ms, channel=channel, text=text)


def test_story_marks_the_channel_and_then_follow_ups_on_the_same_channel() -> None:
    story = render_story(
        [
            _fragment(1, "email", "My parcel never arrived."),
            _fragment(2, "email", "Any news?"),
            _fragment(3, "sms", "Still nothing."),
            _fragment(4, "sms", "Please call me."),
            _fragment(5, "email", "Writing again."),
        ]
    )
    assert story == (
        "[by email] My parcel never arrived.\n"
        "[then] Any news?\n"
        "[by sms] Still nothing.\n"
        "[then] Please call me.\n"
        "[by email] Writing again."
    )


def test_story_skips_empty_fragments_without_breaking_the_channel_run() -> None:
    story = render_story(
        [_fragment(1, "email", "First."), _fragment(2, "sms", ""), _fragment(3, "email", "Next.")]
    )
    assert story == "[by email] First.\n[then] Next."


def test_story_of_no_fragments_is_empty() -> None:
    assert render_story([]) == ""
    assert render_story([_fragment(1, "sms", "")]) == ""


def test_story_within_the_limit_is_kept_whole() -> None:
    story = render_story([_fragment(1, "sms", "x" * 100)], max_chars=len("[by sms] ") + 100)
    assert story == "[by sms] " + "x" * 100


def test_story_over_the_limit_keeps_its_end_behind_an_ellipsis() -> None:
    fragments = [_fragment(i, "sms", f"message number {i}") for i in range(50)]
    full = render_story(fragments, max_chars=100_000)
    story = render_story(fragments, max_chars=120)
    assert len(story) == 120
    assert story.startswith("…")
    assert full.endswith(story[1:])
    assert story.endswith("message number 49")


def test_story_never_exceeds_a_tiny_limit() -> None:
    assert len(render_story([_fragment(1, "sms", "hello there")], max_chars=1)) <= 1
