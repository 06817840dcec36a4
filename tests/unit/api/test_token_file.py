"""`cerebelum dev --tokens FILE`: a token per person, each recorded under its own name."""

from __future__ import annotations

import pytest

from cerebelum_operator.api import Identity, TokenFileAuthenticator
from cerebelum_operator.api.auth import Unauthenticated

ALICE = "alice-token-0123456789"
VICTOR = "victor-token-0123456789"
DOCUMENT = {
    "tokens": [
        {"token": ALICE, "user": "alice", "groups": ["admins"]},
        {"token": VICTOR, "user": "victor"},
    ]
}


async def test_each_token_names_its_own_person_and_groups() -> None:
    authenticator = TokenFileAuthenticator(DOCUMENT)
    assert await authenticator.authenticate(ALICE) == Identity("alice", ("admins",))
    victor = await authenticator.authenticate(VICTOR)
    assert victor.username == "victor" and victor.authenticated and not victor.shared


async def test_an_unknown_token_is_refused() -> None:
    with pytest.raises(Unauthenticated, match="not valid"):
        await TokenFileAuthenticator(DOCUMENT).authenticate("nobody-knows-this-token")


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ({"people": []}, "one key, 'tokens'"),
        ({"tokens": []}, "the list is empty"),
        ({"tokens": [{"token": "short", "user": "a"}]}, r"tokens\[0\].token: a string of at least 16"),
        ({"tokens": [{"token": ALICE, "user": ""}]}, r"tokens\[0\].user"),
        ({"tokens": [{"token": ALICE, "user": "a", "role": "x"}]}, r"tokens\[0\]: expected a mapping of token"),
        ({"tokens": [{"token": ALICE, "user": "a"}, {"token": ALICE, "user": "b"}]}, "given twice"),
        ({"tokens": [{"token": ALICE, "user": "a", "groups": "admins"}]}, r"tokens\[0\].groups"),
    ],
)
def test_a_bad_tokens_file_is_refused_naming_the_problem(document: object, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        TokenFileAuthenticator(document)
