"""What each CEL expression of a workflow can see, and the apply-time check of the names it uses.

CEL compiles `nosuchfn(result)` or `inptu.x` without complaint; the library finds out only when
it evaluates them, in the middle of an execution. This check refuses them when the workflow is
applied instead, by walking the tree `cel_cost` already parsed (one pass, linear in its size):
an unknown name, a function or method the engine's CEL library does not have, and a literal
`steps.<name>` that is not a step of the workflow. Dynamic indexes (`steps[input.name]`) and
types (`'a' + 1`) are left to run time. The library itself has no declarations to check against.

`EXPRESSION_VARIABLES` is the one table of what `engine.decide` gives each kind of expression;
docs/workflow-reference.md's "What each CEL expression can see" is checked against it.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection, Iterable, Mapping

from .cel_cost import CelNode

__all__ = [
    "EXPRESSION_VARIABLES",
    "FUNCTIONS",
    "MAX_NAME_PROBLEMS",
    "MAX_SUGGESTIONS",
    "METHODS",
    "NAMESPACED_FUNCTIONS",
    "TYPE_NAMES",
    "Suggestions",
    "check_names",
]

# The variables `engine.decide` passes to each kind of expression (its `variables()` calls).
# A new construct that evaluates CEL adds its row here, and the reference's table follows.
EXPRESSION_VARIABLES: Mapping[str, tuple[str, ...]] = {
    "args": ("input", "steps", "vars", "phases"),
    "itemArgs": ("input", "steps", "vars", "phases", "item", "index"),
    "items": ("input", "steps", "vars", "phases"),
    "branch": ("input", "steps", "vars", "phases", "result"),
    "diverge": ("input", "steps", "vars", "phases", "result", "error"),
    "flowControl": ("input",),
    "output": ("input", "steps", "vars", "phases"),
    "set": ("input", "steps", "vars", "phases", "result"),
    "startInput": ("input", "steps", "vars", "phases"),
    "timer": ("input", "steps", "vars", "phases"),
    "when": ("input", "steps", "vars", "phases"),
}

# Identifiers the library resolves by itself: type values, as in `type(x) == string`.
TYPE_NAMES = frozenset(
    {"bool", "bytes", "double", "int", "list", "map", "null_type", "optional_type", "string", "type", "uint"}
)

# What the engine's CEL library evaluates: the Rust `cel` crate's standard environment, which the
# `cel` package runs when given no functions of its own (the engine gives none; the package's
# Python extras, `cel.stdlib`, are opt-in and not used). Name → the argument counts it accepts.
# Called as f(x): a method name called so fails, and the other way round.
FUNCTIONS: Mapping[str, frozenset[int]] = {
    "has": frozenset({1}),  # a macro: has(x.field)
    "size": frozenset({1}),
    "int": frozenset({1}),
    "uint": frozenset({1}),
    "double": frozenset({1}),
    "string": frozenset({1}),
    "bytes": frozenset({1}),
    "timestamp": frozenset({1}),
    "duration": frozenset({1}),
    "dyn": frozenset({1}),
    "type": frozenset({1}),
}
# Called as namespace.f(x).
NAMESPACED_FUNCTIONS: Mapping[str, frozenset[int]] = {
    "optional.of": frozenset({1}),
    "optional.ofNonZeroValue": frozenset({1}),
    "optional.none": frozenset({0}),
}
# Called as x.f(…): the counts do not include x. The comprehension macros are here too.
METHODS: Mapping[str, frozenset[int]] = {
    "size": frozenset({0}),
    "contains": frozenset({1}),
    "startsWith": frozenset({1}),
    "endsWith": frozenset({1}),
    "matches": frozenset({1}),
    **dict.fromkeys(
        [f"get{part}" for part in ("FullYear", "Month", "Date", "DayOfMonth", "DayOfYear", "DayOfWeek")]
        + [f"get{part}" for part in ("Hours", "Minutes", "Seconds", "Milliseconds")],
        frozenset({0}),
    ),
    "hasValue": frozenset({0}),
    "value": frozenset({0}),
    "orValue": frozenset({1}),
    "or": frozenset({1}),
    "all": frozenset({2}),
    "exists": frozenset({2}),
    "exists_one": frozenset({2}),
    "existsOne": frozenset({2}),
    "filter": frozenset({2}),
    "map": frozenset({2, 3}),
}

# "Did you mean" hints per workflow; past them a problem is reported without one.
MAX_SUGGESTIONS = 20

# Problems reported per expression: the first few say what is wrong, and finding close matches
# for every name of a long expression among a thousand steps would cost more than it tells.
MAX_NAME_PROBLEMS = 5


class Suggestions:
    """ "Did you mean" hints with a budget: each compares a name with every candidate (a thousand
    step names take some 0.1 s), so one workflow's many unknown names cannot make apply slow."""

    def __init__(self, budget: int = MAX_SUGGESTIONS) -> None:
        self.remaining = budget

    def __call__(self, name: str, candidates: Iterable[str]) -> str:
        if self.remaining <= 0:
            return ""
        self.remaining -= 1
        close = difflib.get_close_matches(name, list(candidates), n=1)
        return f"; did you mean {close[0]!r}?" if close else ""


def _arguments(counts: frozenset[int]) -> str:
    words = [f"{n} argument{'' if n == 1 else 's'}" for n in sorted(counts)]
    return " or ".join(words)


class _Checker:
    def __init__(self, construct: str, steps: Collection[str], suggest: Suggestions) -> None:
        self.construct = construct
        self.suggest = suggest
        self.variables = frozenset(EXPRESSION_VARIABLES[construct])
        self.steps = steps
        self.bound: dict[str, int] = {}  # comprehension variables in scope, with their nesting
        self.problems: list[str] = []
        self.seen: set[str] = set()
        self.more = 0

    def report(self, key: str, message: Callable[[], str]) -> None:
        """Add a problem once per key; past the first few only count it (suggestions cost time)."""
        if key in self.seen:
            return
        self.seen.add(key)
        if len(self.problems) < MAX_NAME_PROBLEMS:
            self.problems.append(message())
        else:
            self.more += 1

    def known(self, name: str) -> bool:
        return name in self.bound or name in self.variables or name in TYPE_NAMES

    def is_steps(self, node: CelNode) -> bool:
        """`steps` the variable, not a comprehension variable of that name."""
        return node.kind == "ident" and node.value == "steps" and "steps" not in self.bound

    def unknown_name(self, name: str) -> None:
        self.report(f"name {name}", lambda: self.name_message(name))

    def name_message(self, name: str) -> str:
        visible = sorted(self.variables)
        elsewhere = [c for c, names in EXPRESSION_VARIABLES.items() if name in names and c != self.construct]
        where = f" ({name!r} is seen only by {_constructs(elsewhere)})" if elsewhere else ""
        hint = "" if where else self.suggest(name, [*self.bound, *visible])
        return f"unknown name {name!r}; this expression can see {', '.join(visible)}{where}{hint}"

    def unknown_step(self, name: str, written: str) -> None:
        self.report(
            f"step {name}",
            lambda: f"unknown step {name!r} in {written}: it is not in the timeline{self.suggest(name, self.steps)}",
        )

    def call(self, node: CelNode) -> list[CelNode]:
        """Check a call; return the children still to walk."""
        name, children = node.value, node.children
        if not node.member:
            self.arity(name, FUNCTIONS, len(children), METHODS, "a method: write x.{name}(…)")
            return list(children)
        target, arguments = children[0], children[1:]
        if target.kind == "ident" and not self.known(target.value):
            qualified = f"{target.value}.{name}"
            if qualified in NAMESPACED_FUNCTIONS:
                self.arity(qualified, NAMESPACED_FUNCTIONS, len(arguments), {}, "")
            else:
                self.report(
                    f"function {qualified}",
                    lambda: f"unknown function {qualified!r}{self.suggest(qualified, NAMESPACED_FUNCTIONS)}",
                )
            return list(arguments)
        self.arity(name, METHODS, len(arguments), FUNCTIONS, "not a method: write {name}(x)", method=True)
        return list(children)

    def arity(
        self,
        name: str,
        table: Mapping[str, frozenset[int]],
        count: int,
        other: Mapping[str, frozenset[int]],
        other_form: str,
        *,
        method: bool = False,
    ) -> None:
        what = "method" if method else "function"
        if name in table:
            if count not in table[name]:
                self.report(
                    f"{what} {name} {count}", lambda: f"{what} {name!r} takes {_arguments(table[name])}, not {count}"
                )
        elif name in other:
            self.report(f"{what} {name}", lambda: f"{name!r} is {other_form.format(name=name)}")
        else:
            self.report(f"{what} {name}", lambda: f"unknown {what} {name!r}{self.suggest(name, table)}")

    def walk(self, root: CelNode) -> None:
        stack: list[CelNode | tuple[bool, str]] = [root]
        while stack:
            item = stack.pop()
            if isinstance(item, tuple):  # a comprehension variable comes into or goes out of scope
                entering, variable = item
                self.bound[variable] = self.bound.get(variable, 0) + (1 if entering else -1)
                if not self.bound[variable]:
                    del self.bound[variable]
                continue
            node = item
            kind = node.kind
            if kind == "ident":
                if not self.known(node.value):
                    self.unknown_name(node.value)
            elif kind == "select" and self.is_steps(node.children[0]):
                if "steps" in self.variables and node.value not in self.steps:
                    self.unknown_step(node.value, f"steps.{node.value}")
                stack.append(node.children[0])
            elif kind == "index" and self.is_steps(node.children[0]):
                key = node.children[1]
                if "steps" in self.variables and key.text is not None and key.text not in self.steps:
                    self.unknown_step(key.text, f"steps[{key.text!r}]")
                stack.extend(node.children)
            elif kind == "macro":
                target, bound, *body = node.children
                self.arity(node.value, METHODS, 1 + len(body), {}, "", method=True)
                # Walked in this order: the range (outside the variable's scope), then the body.
                stack.append((False, bound.value))
                stack.extend(reversed(body))
                stack.append((True, bound.value))
                stack.append(target)
            elif kind == "call":
                stack.extend(reversed(self.call(node)))
            else:
                stack.extend(reversed(node.children))


def _constructs(names: list[str]) -> str:
    places = [_PLACES[name] for name in names]
    return places[0] if len(places) == 1 else f"{', '.join(places[:-1])} and {places[-1]}"


_PLACES = {
    "args": "steps' args",
    "itemArgs": "the args of forEach steps",
    "items": "forEach items",
    "branch": "branch rules",
    "diverge": "diverge rules",
    "flowControl": "flowControl's key and priority",
    "output": "output",
    "set": "steps' set",
    "startInput": "child and continueAsNew inputs",
    "timer": "timer steps' until",
    "when": "steps' when",
}


def check_names(
    tree: CelNode, *, construct: str, steps: Collection[str], suggest: Suggestions | None = None
) -> list[str]:
    """The problems of the names an expression uses, at most MAX_NAME_PROBLEMS and a count of the rest.

    `construct` is a key of EXPRESSION_VARIABLES; `steps` the workflow's step names; `suggest`
    the workflow's budget of hints, shared by its expressions.
    """
    checker = _Checker(construct, steps, suggest or Suggestions())
    checker.walk(tree)
    problems = checker.problems
    if checker.more:
        problems = [*problems[:-1], f"{problems[-1]} (and {checker.more} more problems of names)"]
    return problems
