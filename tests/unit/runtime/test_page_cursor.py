"""Page tokens: opaque, URL-safe, and nothing but what `encode` made decodes."""

from __future__ import annotations

import base64
import string

import pytest

from cerebelum_operator.store import PageCursor


@pytest.mark.parametrize(
    "cursor",
    [PageCursor(0, "a"), PageCursor(1_700_000_000_123, "orders/7:x_y%z"), PageCursor(-5, "é" * 128)],
)
def test_a_cursor_survives_its_token_and_the_token_is_url_safe(cursor: PageCursor) -> None:
    token = cursor.encode()
    assert set(token) <= set(string.ascii_letters + string.digits + "-_")
    assert PageCursor.decode(token) == cursor


def _token(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "token",
    [
        "",
        "!!!",
        "a",
        _token(b"no-colon"),
        _token(b"12:"),  # no id
        _token(b"x1:id"),  # no number
        _token(b"+12:id"),  # a number `encode` never writes
        _token(b"\xff\xfe:id"),  # not UTF-8
        _token(b"12:id") + "==",  # padded: not the canonical token
        "A" * 513,  # longer than any token
    ],
)
def test_anything_else_is_refused_as_not_a_page_token(token: str) -> None:
    with pytest.raises(ValueError, match="not a page token"):
        PageCursor.decode(token)
