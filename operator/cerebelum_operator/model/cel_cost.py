"""A worst-case cost estimate for CEL expressions, so none can run long inside `decide`.

The CEL library evaluates synchronously, on the event loop, with no cost limit and no AST to
inspect, so this module reads the expression itself (a small parser for CEL's grammar) and
bounds its cost the way Kubernetes and cel-go do: every node costs one unit, a comprehension
macro multiplies its body's cost by the size of its range, list literals have their own size,
and values that come from data (`input`, `steps`, `result`, `error`) are as large as the
largest list, map or string found in them. The estimate depends only on the expression and
the variables, so it is deterministic and a replayed `decide` refuses exactly what it refused.

A unit is about one evaluated node; `map` and `filter` also pay one unit per element copied,
because the evaluator copies its accumulator on every item (quadratic: 3,000 items take 1 s).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "MAX_CEL_COST",
    "MAX_CEL_NESTING",
    "Bounds",
    "CelCost",
    "CelNode",
    "CelSyntaxError",
    "CelTooDeep",
    "data_bounds",
    "estimate_cost",
    "parse_cost_model",
]

# About 100 ms of the evaluator on the reference machine at worst (docs/workflow-reference.md).
MAX_CEL_COST = 400_000
# Brackets, calls and comprehensions inside one another; realistic expressions nest under ten.
MAX_CEL_NESTING = 32
# String work (contains, matches, +, ==) is a memory scan: a unit per this many characters.
_CHARS_PER_UNIT = 100
_BIG = 2**62
_MACROS = frozenset({"all", "exists", "exists_one", "existsOne", "map", "filter"})
_PASS_THROUGH = frozenset({"dyn", "string", "bytes"})
_STRING_SCANS = frozenset({"contains", "startsWith", "endsWith"})
_SCALAR = frozenset(
    {"int", "uint", "double", "bool", "type", "timestamp", "duration", "size"}
    | {f"get{part}" for part in ("FullYear", "Month", "Date", "DayOfMonth", "DayOfYear", "DayOfWeek")}
    | {f"get{part}" for part in ("Hours", "Minutes", "Seconds", "Milliseconds")}
)


class CelSyntaxError(ValueError):
    """The estimator cannot read the expression (so it is refused rather than run unbounded)."""


class CelTooDeep(CelSyntaxError):
    """The expression nests deeper than MAX_CEL_NESTING."""


@dataclass(frozen=True, slots=True)
class Bounds:
    """How large data can be: the longest list or map, the longest string, all nodes together."""

    length: int
    chars: int
    total: int


# ---------------------------------------------------------------------------------------------
# Tokens

_TOKEN = re.compile(
    r"""
    (?P<space>\s+|//[^\r\n]*)
  | (?P<string>(?:[rR][bB]?|[bB][rR]?)?
      (?:'''(?:\\.|[^\\])*?'''
      |\"\"\"(?:\\.|[^\\])*?\"\"\"|'(?:\\.|[^'\\\r\n])*'|"(?:\\.|[^"\\\r\n])*"))
  | (?P<number>0[xX][0-9a-fA-F]+[uU]?|(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)(?:[eE][+-]?[0-9]+)?[uU]?)
  | (?P<ident>[_a-zA-Z][_a-zA-Z0-9]*)
  | (?P<op>\|\||&&|==|!=|<=|>=|[-+*/%!<>?:.,()\[\]{}])
    """,
    re.VERBOSE | re.DOTALL,
)


def _tokens(source: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    position = 0
    while position < len(source):
        match = _TOKEN.match(source, position)
        if match is None:
            raise CelSyntaxError(f"unexpected character {source[position]!r} at offset {position}")
        kind = match.lastgroup or ""
        if kind != "space":
            out.append((kind, match.group()))
        position = match.end()
    out.append(("end", ""))
    return out


# ---------------------------------------------------------------------------------------------
# Abstract values: what the estimate knows of a value's size


@dataclass(frozen=True, slots=True)
class _Shape:
    length: int = 0  # elements of a list or map
    chars: int = 0  # characters of a string or bytes
    total: int = 1  # nodes of the whole value, for equality and `in`
    element: _Shape | None = None  # of a list, or the keys and values of a map
    data: bool = False  # from the variables: its elements are as large as itself

    def item(self) -> _Shape:
        if self.data:
            return self
        return self.element or _SCALAR_SHAPE

    def flat(self) -> tuple[int, int, int]:
        length, chars, total = self.length, self.chars, self.total
        inner = None if self.data else self.element
        while inner is not None:
            length, chars, total = max(length, inner.length), max(chars, inner.chars), max(total, inner.total)
            inner = None if inner.data else inner.element
        return length, chars, total


_SCALAR_SHAPE = _Shape()


def _union(shapes: Iterable[_Shape]) -> _Shape:
    items = list(shapes)
    if not items:
        return _SCALAR_SHAPE
    if any(s.data for s in items):
        flats = [s.flat() for s in items]
        return _Shape(max(f[0] for f in flats), max(f[1] for f in flats), max(f[2] for f in flats), data=True)
    elements = [s.element for s in items if s.element is not None]
    return _Shape(
        max(s.length for s in items),
        max(s.chars for s in items),
        max(s.total for s in items),
        _union(elements) if elements else None,
    )


def _scan(chars: int) -> int:
    return 1 + chars // _CHARS_PER_UNIT  # a string shorter than a unit costs as much as an empty one


# ---------------------------------------------------------------------------------------------
# Syntax: the parser builds cost functions directly, evaluated later with the data's bounds.

_Env = Mapping[str, "_Shape"]


@dataclass(frozen=True, slots=True)
class CelNode:
    """A node of the parsed expression; `model.cel_check` walks the same tree for names."""

    kind: str
    value: str = ""
    children: tuple[CelNode, ...] = ()
    size: int = 0  # characters of a string literal
    member: bool = False  # a call written as a method, `x.f()`: its first child is the target
    text: str | None = None  # a string literal's text, when it has no escapes and is not bytes


_LEVELS: tuple[frozenset[str], ...] = (
    frozenset({"||"}),
    frozenset({"&&"}),
    frozenset({"<", "<=", ">", ">=", "==", "!=", "in"}),
    frozenset({"+", "-"}),
    frozenset({"*", "/", "%"}),
)


@dataclass
class _Parser:
    tokens: list[tuple[str, str]]
    position: int = 0
    depth: int = 0

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.position]

    def next(self) -> tuple[str, str]:
        token = self.tokens[self.position]
        self.position += 1
        return token

    def expect(self, text: str) -> None:
        kind, value = self.next()
        if value != text or kind not in ("op", "ident"):
            raise CelSyntaxError(f"expected {text!r}, found {value or 'the end'!r}")

    def accept(self, text: str) -> bool:
        kind, value = self.peek()
        if kind == "op" and value == text:
            self.position += 1
            return True
        return False

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_CEL_NESTING:
            raise CelTooDeep(f"nested more than {MAX_CEL_NESTING} levels deep (the limit)")

    def expression(self) -> CelNode:
        self.enter()
        condition = self.binary(0)
        if self.accept("?"):
            then = self.binary(0)
            self.expect(":")
            otherwise = self.expression()
            condition = CelNode("cond", children=(condition, then, otherwise))
        self.depth -= 1
        return condition

    def binary(self, level: int) -> CelNode:
        if level == len(_LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        while True:
            kind, value = self.peek()
            if kind not in ("op", "ident") or value not in _LEVELS[level]:
                return left
            self.position += 1
            left = CelNode("binary", value, (left, self.binary(level + 1)))

    def unary(self) -> CelNode:
        if self.accept("!") or self.accept("-"):
            self.enter()
            operand = self.unary()
            self.depth -= 1
            return CelNode("unary", children=(operand,))
        return self.member()

    def member(self) -> CelNode:
        node = self.primary()
        while True:
            if self.accept("."):
                kind, name = self.next()
                if kind != "ident":
                    raise CelSyntaxError(f"expected a field name after '.', found {name or 'the end'!r}")
                node = self.call(name, node) if self.accept("(") else CelNode("select", name, (node,))
            elif self.accept("["):
                self.enter()
                index = self.expression()
                self.expect("]")
                self.depth -= 1
                node = CelNode("index", children=(node, index))
            else:
                return node

    def arguments(self, closing: str) -> list[CelNode]:
        self.enter()
        items: list[CelNode] = []
        while not self.accept(closing):
            items.append(self.expression())
            if not self.accept(","):
                self.expect(closing)
                break
        self.depth -= 1
        return items

    def call(self, name: str, target: CelNode | None) -> CelNode:
        args = self.arguments(")")
        if target is not None and name in _MACROS and len(args) in (2, 3) and args[0].kind == "ident":
            return CelNode("macro", name, (target, *args))
        children = ((target,) if target is not None else ()) + tuple(args)
        return CelNode("call", name, children, member=target is not None)

    def primary(self) -> CelNode:
        kind, value = self.next()
        if kind == "number":
            return CelNode("literal")
        if kind == "string":
            return CelNode("literal", size=len(value), text=_plain_text(value))
        if kind == "ident":
            if value in ("true", "false", "null"):
                return CelNode("literal")
            if self.accept("("):
                return self.call(value, None)
            if self.accept("{"):  # a message literal: its fields are what it costs
                return CelNode("map", children=tuple(self.entries()))
            return CelNode("ident", value)
        if kind == "op":
            if value == ".":  # a leading dot names the root scope
                return self.primary()
            if value == "(":
                inner = self.expression()
                self.expect(")")
                return inner
            if value == "[":
                return CelNode("list", children=tuple(self.arguments("]")))
            if value == "{":
                return CelNode("map", children=tuple(self.entries()))
        raise CelSyntaxError(f"unexpected {value or 'end of expression'!r}")

    def entries(self) -> list[CelNode]:
        self.enter()
        items: list[CelNode] = []
        while not self.accept("}"):
            key_kind, _ = self.peek()
            if key_kind == "ident" and self.tokens[self.position + 1][1] == ":":  # a message field
                self.position += 1
                items.append(CelNode("literal"))
            else:
                items.append(self.expression())
            self.expect(":")
            items.append(self.expression())
            if not self.accept(","):
                self.expect("}")
                break
        self.depth -= 1
        return items


def _plain_text(token: str) -> str | None:
    """A string literal's value when reading it needs no escapes; None for bytes or escapes."""
    prefix = len(token) - len(token.lstrip("rRbB"))
    flags, quoted = token[:prefix].lower(), token[prefix:]
    if "b" in flags or ("r" not in flags and "\\" in quoted):
        return None
    quote = 3 if quoted[:3] in ("'''", '"""') else 1
    return quoted[quote:-quote]


def _cost(node: CelNode, env: _Env, data: _Shape) -> tuple[int, _Shape]:
    """The node's cost and the shape of its value.

    A chain (`a || b || …`, `x.a.b`, `x.f().g()`) nests as deep as it is long, its first child
    innermost: that spine is walked in a loop, so a long chain cannot exhaust Python's stack.
    Other nesting is bounded by the parser (MAX_CEL_NESTING).
    """
    spine = [node]
    while _chained(spine[-1]):
        spine.append(spine[-1].children[0])
    result = _node_cost(spine.pop(), env, data, None)
    while spine:
        result = _node_cost(spine.pop(), env, data, result)
    return result


def _chained(node: CelNode) -> bool:
    return node.kind in ("binary", "select", "index", "macro") or (node.kind == "call" and node.member)


def _node_cost(node: CelNode, env: _Env, data: _Shape, first: tuple[int, _Shape] | None) -> tuple[int, _Shape]:
    """One node's cost; `first`, when given, is that of its first child, already computed."""
    kind = node.kind
    if kind == "literal":
        return 1, _Shape(chars=node.size) if node.size else _SCALAR_SHAPE
    if kind == "ident":
        return 1, env.get(node.value, data)
    if kind in ("list", "map"):
        parts = [_cost(child, env, data) for child in node.children]
        count = len(parts) if kind == "list" else len(parts) // 2
        return 1 + sum(c for c, _ in parts), _Shape(
            length=count,
            total=1 + sum(s.total for _, s in parts),
            element=_union(s for _, s in parts) if parts else None,
        )
    if kind == "macro":
        return _macro(node, env, data, first)
    rest = node.children if first is None else node.children[1:]
    parts = ([] if first is None else [first]) + [_cost(child, env, data) for child in rest]
    cost = 1 + sum(c for c, _ in parts)
    shapes = [s for _, s in parts]
    if kind in ("select", "index"):
        return cost, shapes[0].item()
    if kind == "unary":
        return cost, _SCALAR_SHAPE
    if kind == "cond":
        return cost, _union(shapes[1:])
    if kind == "binary":
        return _binary(node.value, cost, shapes[0], shapes[1])
    name = node.value  # a call: the target, if any, is the first argument
    if name == "has" or name in _SCALAR:
        return cost + sum(_scan(s.chars) for s in shapes), _SCALAR_SHAPE
    if name in _STRING_SCANS:
        return cost + sum(_scan(s.chars) for s in shapes), _SCALAR_SHAPE
    if name == "matches":  # the pattern is compiled on every call
        return cost + _scan(shapes[0].chars) + sum(s.chars for s in shapes[1:]), _SCALAR_SHAPE
    if name in _PASS_THROUGH:
        return cost + sum(_scan(s.chars) for s in shapes), _union(shapes)
    # Anything else (optional.of, a function a later library adds): linear in its arguments,
    # and its result no larger than them, a string's characters counted as elements.
    flat = [s.flat() for s in shapes]
    length = max((max(f[0], f[1]) for f in flat), default=0)
    chars = max((f[1] for f in flat), default=0)
    total = sum(f[2] for f in flat) + chars
    return cost + sum(f[0] + _scan(f[1]) for f in flat), _Shape(length, chars, total, data=True)


def _binary(operator: str, cost: int, left: _Shape, right: _Shape) -> tuple[int, _Shape]:
    if operator == "+":
        elements = [s.item() for s in (left, right) if s.data or s.element is not None]
        joined = _Shape(
            left.length + right.length,
            left.chars + right.chars,
            left.total + right.total,
            _union(elements) if elements else None,
            data=left.data or right.data,
        )
        return cost + joined.length + _scan(joined.chars), joined
    if operator in ("==", "!="):
        return cost + min(left.total, right.total) + _scan(min(left.chars, right.chars)), _SCALAR_SHAPE
    if operator == "in":
        return cost + right.total + _scan(right.chars), _SCALAR_SHAPE
    if operator in ("<", "<=", ">", ">="):
        return cost + _scan(min(left.chars, right.chars)), _SCALAR_SHAPE
    return cost, _SCALAR_SHAPE


def _macro(node: CelNode, env: _Env, data: _Shape, first: tuple[int, _Shape] | None) -> tuple[int, _Shape]:
    target, variable, *body = node.children
    range_cost, range_shape = first if first is not None else _cost(target, env, data)
    count = range_shape.length
    inner = {**env, variable.value: range_shape.item()}
    parts = [_cost(child, inner, data) for child in body]
    per_item = 2 + sum(c for c, _ in parts)
    cost = range_cost + 1 + count * per_item
    if node.value == "map":
        produced = parts[-1][1]
        copies = count * (count + 1) // 2
        return cost + copies, _Shape(length=count, total=1 + count * produced.total, element=produced)
    if node.value == "filter":
        return cost + count * (count + 1) // 2, range_shape
    return cost, _SCALAR_SHAPE


# ---------------------------------------------------------------------------------------------
# The public face


@dataclass(frozen=True, slots=True)
class CelCost:
    """An expression's cost model: its cost on the smallest data, and whether data can raise it."""

    static_cost: int
    depends_on_data: bool
    _tree: CelNode = field(repr=False, compare=False)

    def estimate(self, bounds: Bounds) -> int:
        """The worst-case cost when every data value is within `bounds`."""
        if not self.depends_on_data:
            return self.static_cost
        return estimate_cost(self._tree, bounds)

    @property
    def tree(self) -> CelNode:
        """The parsed expression."""
        return self._tree


def estimate_cost(tree: CelNode, bounds: Bounds) -> int:
    data = _Shape(bounds.length, bounds.chars, max(bounds.total, 1), data=True)
    return _cost(tree, {}, data)[0]


def parse_cost_model(source: str) -> CelCost:
    """Read an expression the CEL library accepted; raise CelSyntaxError if this parser cannot."""
    parser = _Parser(_tokens(source))
    tree = parser.expression()
    kind, value = parser.peek()
    if kind != "end":
        raise CelSyntaxError(f"unexpected {value!r} after the end of the expression")
    static = estimate_cost(tree, Bounds(0, 0, 1))
    # Literal sizes are below the static cost, so data this large shows any dependence on data.
    return CelCost(static, estimate_cost(tree, Bounds(_BIG, _BIG, _BIG)) != static, tree)


def data_bounds(values: Iterable[Any]) -> Bounds:
    """The largest list or map, the longest string and the node count across JSON values."""
    length = chars = total = 0
    stack = list(values)
    while stack:
        value = stack.pop()
        total += 1
        if isinstance(value, dict):
            length = max(length, len(value))
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list | tuple):
            length = max(length, len(value))
            stack.extend(value)
        elif isinstance(value, str | bytes):
            chars = max(chars, len(value))
    return Bounds(length, chars, total)
