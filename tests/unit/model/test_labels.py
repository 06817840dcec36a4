"""Execution labels follow Kubernetes label syntax, and a refusal names the bad label."""

from __future__ import annotations

import pytest

from cerebelum_operator.model import MAX_LABELS, InputInvalid, LabelsInvalid, check_labels


@pytest.mark.parametrize(
    "labels",
    [
        {},
        {"team": "billing"},
        {"app.kubernetes.io/name": "shop", "a": ""},
        {"k8s.io/x-y_z.1": "A-b_c.9"},
        {"a" * 63: "b" * 63},
        {"p" * 63 + "." + "q" * 63 + "." + "r" * 63 + "." + "s" * 61 + "/n": "v"},  # a 253-character prefix
        {f"k{n}": str(n) for n in range(MAX_LABELS)},
    ],
)
def test_kubernetes_label_syntax_is_accepted(labels: dict[str, str]) -> None:
    assert check_labels(labels) == labels


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ({"": "v"}, "key's name is empty"),
        ({"a" * 64: "v"}, "name is longer than 63"),
        ({"-team": "v"}, "key's name is not letters"),
        ({"team-": "v"}, "key's name is not letters"),
        ({"te am": "v"}, "key's name is not letters"),
        ({"/name": "v"}, "prefix before '/' is empty"),
        ({"Example.com/name": "v"}, "not a DNS subdomain"),
        ({"a..b/name": "v"}, "not a DNS subdomain"),
        ({"a/b/c": "v"}, "not a DNS subdomain"),
        ({"x" * 254 + "/n": "v"}, "prefix is longer than 253"),
        ({"prefix/": "v"}, "key's name is empty"),
        ({"team": "b" * 64}, "value is longer than 63"),
        ({"team": "-billing"}, "value is not letters"),
        ({"team": "bill ing"}, "value is not letters"),
        ({"team": "billing\n"}, "value is not letters"),
        ({f"k{n}": "v" for n in range(MAX_LABELS + 1)}, f"at most {MAX_LABELS} labels, not {MAX_LABELS + 1}"),
    ],
)
def test_anything_else_is_refused_naming_the_label_and_the_rule(labels: dict[str, str], message: str) -> None:
    with pytest.raises(LabelsInvalid, match=message) as refused:
        check_labels(labels)
    if len(labels) == 1:
        [(key, value)] = labels.items()
        named = f"label {key!r}={value!r}"
        assert str(refused.value).startswith(named if len(named) < 60 else "label '")


def test_a_refused_label_is_an_invalid_input_so_it_is_refused_wherever_inputs_are() -> None:
    assert issubclass(LabelsInvalid, InputInvalid)


def test_a_huge_bad_label_is_not_repeated_whole_in_the_message() -> None:
    with pytest.raises(LabelsInvalid) as refused:
        check_labels({"k": "x" * 10_000})
    assert len(str(refused.value)) < 300
