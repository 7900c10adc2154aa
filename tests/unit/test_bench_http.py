"""The bench's HTTP/1.1 client: requests built as bytes, responses read in any number of pieces."""

from __future__ import annotations

import pytest

from omnirouter.bench.http import HttpProtocolError, _Response, build_post


def feed_in_pieces(data: bytes, size: int) -> tuple[_Response, list[bool]]:
    response = _Response()
    completions = [response.feed(data[i : i + size]) for i in range(0, len(data), size)]
    return response, completions


def test_a_post_is_one_request_with_host_headers_length_and_body() -> None:
    request = build_post(
        "http://127.0.0.1:8080/webhooks/twilio/sms?tenant=acme",
        b"From=%2B1555&Body=hi",
        {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": "c2ln"},
    )
    head, _, body = request.partition(b"\r\n\r\n")
    assert head.split(b"\r\n") == [
        b"POST /webhooks/twilio/sms?tenant=acme HTTP/1.1",
        b"Host: 127.0.0.1:8080",
        b"Content-Type: application/x-www-form-urlencoded",
        b"X-Twilio-Signature: c2ln",
        b"Content-Length: 20",
    ]
    assert body == b"From=%2B1555&Body=hi"


@pytest.mark.parametrize("size", [1, 7, 1000])
def test_a_response_with_a_length_completes_exactly_at_its_last_byte(size: int) -> None:
    data = b"HTTP/1.1 200 OK\r\ncontent-type: text/xml\r\ncontent-length: 11\r\n\r\n<Response/>"
    response, completions = feed_in_pieces(data, size)
    assert completions[-1] is True
    assert not any(completions[:-1])  # never complete before the body's last byte
    assert response.status == 200
    assert response.keep_alive
    assert response.body == b"<Response/>"


@pytest.mark.parametrize("size", [1, 5, 1000])
def test_a_chunked_response_completes_at_its_last_chunk(size: int) -> None:
    data = (
        b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n"
    )
    response, completions = feed_in_pieces(data, size)
    assert completions[-1] is True
    assert not any(completions[:-1])
    assert response.status == 503
    assert response.body == b"hello world"


def test_connection_close_and_http_1_0_end_keep_alive() -> None:
    closing, _ = feed_in_pieces(
        b"HTTP/1.1 413 Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", 1000
    )
    assert closing.status == 413 and not closing.keep_alive
    old, _ = feed_in_pieces(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 1000)
    assert not old.keep_alive


@pytest.mark.parametrize(
    "data",
    [
        b"SSH-2.0-OpenSSH_9.2\r\n\r\n",  # not HTTP at all
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n",  # no way to know the end
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nabc",  # more than announced
        b"HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n",  # a status that is no number
        b"HTTP/1.1 200 OK\r\nContent-Length: two\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",  # chunk size
    ],
)
def test_what_is_not_a_readable_response_is_refused(data: bytes) -> None:
    with pytest.raises(HttpProtocolError):
        _Response().feed(data)
