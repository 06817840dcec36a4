"""Plain HTTP to the engine's web UI, as any client meets it (no browser): for the tests of its rules."""

from __future__ import annotations

import http.client
import re
from urllib.parse import urlencode

__all__ = ["CSRF", "ui_request"]

# The form token every page that acts carries (web/session.py).
CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')


def ui_request(
    port: int,
    method: str,
    path: str,
    *,
    bearer: str | None = None,
    cookie: str | None = None,
    form: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], str]:
    """(status, headers with lower-case names, body) of one request; redirects are not followed."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    sent = {"Accept": "text/html", **(headers or {})}
    if bearer:
        sent["Authorization"] = f"Bearer {bearer}"
    if cookie:
        sent["Cookie"] = f"cerebelum_token={cookie}"
    body = None
    if form is not None:
        body = urlencode(form)
        sent["Content-Type"] = "application/x-www-form-urlencoded"
    try:
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read().decode()
    finally:
        connection.close()
