"""A small, safe expression language for business rules and catalog filters.

Rules such as "visitors from Berlin see the Berlin promotion first" and filters such
as "in stock, under 100" are written as expressions::

    user.location == "Berlin" and context.device != "mobile"
    category == "shoes" and price < 100
    "Drama" in item.categories and not (year < 1990)

The text is tokenized and parsed here by hand (a Pratt parser) into a tree of frozen
dataclasses; nothing is ever handed to ``eval``, ``exec`` or Python's ``ast``. The
tree is then evaluated over a mapping of names (:meth:`Expression.evaluate`), or over
every row of a pandas frame at once (:meth:`Expression.mask`).

Grammar, loosest binding first::

    expression := expression "or" expression
                | expression "and" expression
                | "not" expression
                | sum (("==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not" "in") sum)?
    sum        := sum ("+" | "-") product | product
    product    := product ("*" | "/") unary | unary
    unary      := "-" unary | primary
    primary    := NUMBER | STRING | "true" | "false" | "null"
                | "[" [expression ("," expression)*] "]"
                | NAME ("." NAME)*
                | NAME "(" [argument ("," argument)*] ")"
                | "(" expression ")"
    argument   := expression | NAME "=" expression

Strings take double or single quotes with the escapes ``\\\\ \\" \\' \\n \\t \\r``.
Comparisons do not chain (``a < b < c`` is refused: write ``a < b and b < c``).

Values and their rules:

- A value is null, a boolean, a number, a string or a list. A name that is not
  given evaluates to null; values of other types (dates, mappings) count as null.
- Any comparison with a null operand is false, whatever the operator: for a user
  without an age both ``user.age < 30`` and ``user.age >= 30`` are false, and so is
  ``user.location != "Berlin"`` for a user without a location. To test whether a value
  is missing, compare it with the literal: ``user.age == null``, ``user.age != null``.
- ``==`` and ``!=`` compare values of different types as different (``1 != "1"``);
  ordering compares only two numbers or two strings and is false otherwise.
- ``x in y`` is membership when ``y`` is a list and substring search when both are
  strings, false otherwise; ``not in`` is its negation (and false with a null operand).
- ``and``, ``or`` and ``not`` give booleans; null, false, 0, ``""`` and ``[]`` are false.
- Arithmetic works on numbers (``+`` also joins strings); anything else, and a
  division by zero, gives null.
- Functions: ``lower(x)``, ``upper(x)``, ``len(x)``, ``abs(x)``, ``min(a, ...)``,
  ``max(a, ...)``; a caller may offer more (:class:`Signature`), checked at parse time.
- Numbers are written with at most 30 characters and must fit a float (about
  ``1.8e308``); arithmetic whose result would not is null, like a division by zero.

What a mask costs can be estimated before it runs (:meth:`Expression.cost`), so a
caller can refuse an expression that would keep Python busy for every row.

Examples
--------
>>> rule = parse('user.location == "Berlin" and context.hour >= 18')
>>> rule.holds({"user": {"location": "Berlin"}, "context": {"hour": 20}})
True
>>> rule.holds({"user": {}, "context": {"hour": 20}})   # a missing location is null
False
>>> import pandas as pd
>>> catalog = pd.DataFrame({"category": ["shoes", "shoes", "hats"], "price": [80, 120, 20]})
>>> parse('category == "shoes" and item.price < 100').mask(catalog).tolist()
[True, False, False]
>>> parse("price < 100 and")
Traceback (most recent call last):
...
tailored.expressions.ExpressionError: unexpected end of expression at column 16
  price < 100 and
                 ^
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

import numpy as np
import pandas as pd

from tailored.errors import InvalidDataError

__all__ = [
    "BUILTINS", "OBJECT_COST", "PYTHON_COST", "VECTOR_COST", "Binary", "Call", "Compare",
    "Expression", "ExpressionCostError", "ExpressionError", "ListLiteral", "Literal", "Name",
    "Node", "Signature", "Unary", "column_kind", "evaluate", "normalise", "parse", "to_text",
    "truthy", "walk",
]

#: Longest expression text accepted, in characters.
MAX_LENGTH: Final = 10_000
#: Deepest nesting accepted (parentheses, operators), so evaluation never overflows.
MAX_DEPTH: Final = 100
#: Longest number literal accepted, in characters (longer ones need an exponent).
MAX_NUMBER_LENGTH: Final = 30
#: The largest magnitude a number may have: the largest float. Integers beyond it could
#: not be compared with a column of floats, so they are refused or become null.
_LARGEST_NUMBER: Final = int(sys.float_info.max)

KEYWORDS: Final = frozenset({"and", "or", "not", "in", "true", "false", "null"})
COMPARISONS: Final = ("==", "!=", "<=", ">=", "<", ">", "in", "not in")

# ---- errors -------------------------------------------------------------------------------


class ExpressionError(InvalidDataError):
    """An expression that cannot be parsed, with where it went wrong.

    ``position`` is the 0-based offset into ``text``; ``line`` and ``column`` are
    1-based; ``hint`` says what to do, if anything can be said. The message ends with
    the offending line and a caret under the spot.
    """

    def __init__(self, reason: str, text: str, position: int, hint: str = "") -> None:
        self.reason = reason
        self.hint = hint
        self.text = text
        self.position = max(0, min(position, len(text)))
        self.line, self.column = _line_column(text, self.position)
        where = (f"at line {self.line}, column {self.column}" if "\n" in text
                 else f"at column {self.column}")
        source = text.split("\n")[self.line - 1].replace("\t", " ").replace("\r", " ")
        message = f"{reason} {where}{'; ' + hint if hint else ''}"
        super().__init__(f"{message}\n  {source}\n  {' ' * (self.column - 1)}^")


class ExpressionCostError(ExpressionError):
    """An expression refused before it ran: evaluating it would cost more than allowed.

    ``cost`` is the estimate (:meth:`Expression.cost`) of all that was to run with it,
    ``budget`` the most allowed; ``text`` and ``position`` point at the costliest
    expression.
    """

    def __init__(self, reason: str, text: str, position: int, hint: str = "", *,
                 cost: float, budget: float) -> None:
        super().__init__(reason, text, position, hint)
        self.cost = cost
        self.budget = budget


def _line_column(text: str, position: int) -> tuple[int, int]:
    """1-based line and column of a 0-based offset."""
    before = text[:position]
    return before.count("\n") + 1, position - (before.rfind("\n") + 1) + 1


# ---- the tree -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """Base of the expression tree; ``position`` (not compared) is where it starts."""

    position: int = field(default=0, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True)
class Literal(Node):
    """A constant: null, a boolean, a number or a string."""

    value: bool | int | float | str | None


@dataclass(frozen=True)
class ListLiteral(Node):
    """``[a, b, ...]``."""

    items: tuple[Node, ...]


@dataclass(frozen=True)
class Name(Node):
    """A dotted name such as ``user.location``, looked up in the caller's names."""

    path: tuple[str, ...]

    @property
    def dotted(self) -> str:
        return ".".join(self.path)


@dataclass(frozen=True)
class Call(Node):
    """``function(arg, ..., keyword=value)``."""

    function: str
    args: tuple[Node, ...] = ()
    keywords: tuple[tuple[str, Node], ...] = ()


@dataclass(frozen=True)
class Unary(Node):
    """``not x`` or ``-x``."""

    op: str
    operand: Node


@dataclass(frozen=True)
class Binary(Node):
    """``+ - * /`` and the boolean ``and`` / ``or``."""

    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Compare(Node):
    """``== != < <= > >= in`` and ``not in``."""

    op: str
    left: Node
    right: Node


def _children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, ListLiteral):
        return node.items
    if isinstance(node, Call):
        return node.args + tuple(value for _, value in node.keywords)
    if isinstance(node, Unary):
        return (node.operand,)
    if isinstance(node, Binary | Compare):
        return (node.left, node.right)
    return ()


def walk(node: Node) -> Iterator[Node]:
    """Every node of the tree under ``node`` (itself included), parents first."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(_children(current)))


# ---- functions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Signature:
    """What a function accepts: parameter names, how many are required, or any number.

    A caller offering its own functions passes their signatures to :func:`parse`
    (so calls are checked when the text is parsed) and their implementations to
    :meth:`Expression.evaluate`.
    """

    name: str
    params: tuple[str, ...] = ()
    required: int = 0
    variadic: bool = False
    help: str = ""


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _lower(text: Any) -> Any:
    return text.lower() if isinstance(text, str) else None


def _upper(text: Any) -> Any:
    return text.upper() if isinstance(text, str) else None


def _len(value: Any) -> Any:
    return len(value) if isinstance(value, str | tuple) else None


def _abs(value: Any) -> Any:
    return abs(value) if _number(value) else None


def _extreme(pick: Callable[..., Any]) -> Callable[..., Any]:
    def extreme(*values: Any) -> Any:
        if all(_number(v) for v in values) or all(isinstance(v, str) for v in values):
            return pick(values)
        return None
    return extreme


#: The functions every expression may call.
BUILTINS: Final[dict[str, tuple[Signature, Callable[..., Any]]]] = {
    "lower": (Signature("lower", ("text",), 1, help="the text in lower case"), _lower),
    "upper": (Signature("upper", ("text",), 1, help="the text in upper case"), _upper),
    "len": (Signature("len", ("value",), 1, help="length of a string or list"), _len),
    "abs": (Signature("abs", ("number",), 1, help="absolute value"), _abs),
    "min": (Signature("min", (), 1, variadic=True, help="smallest argument"), _extreme(min)),
    "max": (Signature("max", (), 1, variadic=True, help="largest argument"), _extreme(max)),
}

# ---- tokens -------------------------------------------------------------------------------


class _Token(NamedTuple):
    kind: str  # number, string, name, keyword, op, end
    text: str
    position: int
    value: Any = None


_TOKEN = re.compile(r"""
    (?P<space>[ \t\r\n]+)
  | (?P<number>(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<op>==|!=|<=|>=|[<>+\-*/()\[\],.=])
""", re.VERBOSE | re.DOTALL)
_ESCAPES: Final = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t", "r": "\r"}


def _unescape(body: str, text: str, position: int) -> str:
    out, index = [], 0
    while index < len(body):
        char = body[index]
        if char == "\\":
            escaped = body[index + 1]
            if escaped not in _ESCAPES:
                raise ExpressionError(f"unknown escape '\\{escaped}' in a string", text,
                                      position + 1 + index,
                                      "use \\\\ \\\" \\' \\n \\t or \\r")
            out.append(_ESCAPES[escaped])
            index += 2
        else:
            out.append(char)
            index += 1
    return "".join(out)


def _number_value(chunk: str, text: str, position: int) -> int | float:
    """The value of a number literal: refused when too long to read or too large for a
    float (which every column comparison needs)."""
    if len(chunk) > MAX_NUMBER_LENGTH:
        raise ExpressionError(f"number of {len(chunk):,} characters is too long", text,
                              position, f"write at most {MAX_NUMBER_LENGTH} characters, with "
                                        "an exponent for large or small numbers (2.5e12, 1e-9)")
    value = float(chunk) if any(c in chunk for c in ".eE") else int(chunk)
    if not abs(value) <= _LARGEST_NUMBER:  # also catches inf
        raise ExpressionError(f"number {chunk} is too large", text, position,
                              f"numbers must lie within ±{sys.float_info.max:.3g}")
    return value


def _tokenize(text: str) -> list[_Token]:
    tokens, position = [], 0
    while position < len(text):
        found = _TOKEN.match(text, position)
        if found is None:
            char = text[position]
            if char in "\"'":
                raise ExpressionError("unterminated string", text, position,
                                      f"close it with {char}")
            if char == "!":
                raise ExpressionError("unexpected character '!'", text, position,
                                      "write 'not' for negation or '!=' for inequality")
            shown = char if char.isprintable() else f"\\u{ord(char):04x}"
            raise ExpressionError(f"unexpected character {shown!r}", text, position)
        kind = found.lastgroup or ""
        chunk = found.group()
        if kind == "number":
            tokens.append(_Token("number", chunk, position, _number_value(chunk, text,
                                                                           position)))
        elif kind == "string":
            tokens.append(_Token("string", chunk, position,
                                 _unescape(chunk[1:-1], text, position)))
        elif kind == "name":
            tokens.append(_Token("keyword" if chunk in KEYWORDS else "name", chunk, position))
        elif kind == "op":
            tokens.append(_Token("op", chunk, position))
        position = found.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


# ---- parser -------------------------------------------------------------------------------

_OR, _AND, _NOT, _COMPARE, _SUM, _PRODUCT, _NEGATE, _PRIMARY = range(1, 9)
_INFIX: Final = {"or": _OR, "and": _AND, "+": _SUM, "-": _SUM, "*": _PRODUCT, "/": _PRODUCT,
                 **dict.fromkeys(COMPARISONS, _COMPARE)}


def _describe(token: _Token) -> str:
    return "end of expression" if token.kind == "end" else f"token {token.text!r}"


class _Parser:
    def __init__(self, text: str, signatures: Mapping[str, Signature]) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0
        self.depth = 0
        self.signatures = signatures

    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.index + ahead, len(self.tokens) - 1)]

    def advance(self) -> _Token:
        token = self.peek()
        self.index = min(self.index + 1, len(self.tokens) - 1)
        return token

    def is_op(self, token: _Token, *texts: str) -> bool:
        return token.kind == "op" and token.text in texts

    def fail(self, token: _Token, hint: str = "") -> ExpressionError:
        return ExpressionError(f"unexpected {_describe(token)}", self.text, token.position, hint)

    def expect(self, text: str, opened: _Token) -> None:
        token = self.peek()
        if not self.is_op(token, text):
            raise self.fail(token, f"expected {text!r} to close the {opened.text!r} at column "
                                   f"{_line_column(self.text, opened.position)[1]}")
        self.advance()

    def infix(self) -> str | None:
        token = self.peek()
        if token.kind == "keyword" and token.text == "not":
            follow = self.peek(1)
            return "not in" if follow.kind == "keyword" and follow.text == "in" else None
        if token.kind in ("keyword", "op") and token.text in _INFIX:
            return token.text
        return None

    def expression(self, min_precedence: int = _OR) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExpressionError(f"expression nests more than {MAX_DEPTH} levels deep",
                                  self.text, self.peek().position)
        left = self.prefix()
        while (op := self.infix()) is not None and _INFIX[op] >= min_precedence:
            token = self.advance()
            if op == "not in":
                self.advance()
            precedence = _INFIX[op]
            right = self.expression(precedence + 1)
            if precedence == _COMPARE:
                left = Compare(op, left, right, position=token.position)
                if (follow := self.infix()) is not None and _INFIX[follow] == _COMPARE:
                    raise ExpressionError("comparisons cannot be chained", self.text,
                                          self.peek().position, "join them with 'and'")
            else:
                left = Binary(op, left, right, position=token.position)
        self.depth -= 1
        return left

    def prefix(self) -> Node:
        token = self.advance()
        if token.kind in ("number", "string"):
            return Literal(token.value, position=token.position)
        if token.kind == "keyword":
            constants = {"true": True, "false": False, "null": None}
            if token.text in constants:
                return Literal(constants[token.text], position=token.position)
            if token.text == "not":
                return Unary("not", self.expression(_NOT), position=token.position)
        if self.is_op(token, "-"):
            return Unary("-", self.expression(_NEGATE), position=token.position)
        if self.is_op(token, "("):
            inner = self.expression()
            self.expect(")", token)
            return inner
        if self.is_op(token, "["):
            items = self.sequence("]", token, allow_keywords=False)[0]
            return ListLiteral(tuple(items), position=token.position)
        if token.kind == "name":
            return self.name(token)
        raise self.fail(token)

    def sequence(self, closing: str, opened: _Token, *, allow_keywords: bool,
                 ) -> tuple[list[Node], list[tuple[str, Node, _Token]]]:
        """Comma-separated expressions up to ``closing`` (and ``name=value`` if allowed)."""
        items: list[Node] = []
        keywords: list[tuple[str, Node, _Token]] = []
        if self.is_op(self.peek(), closing):
            self.advance()
            return items, keywords
        while True:
            start = self.peek()
            if allow_keywords and start.kind == "name" and self.is_op(self.peek(1), "="):
                self.advance()
                self.advance()
                keywords.append((start.text, self.expression(), start))
            else:
                if keywords:
                    raise ExpressionError("positional argument after a keyword argument",
                                          self.text, start.position)
                items.append(self.expression())
            if self.is_op(self.peek(), ","):
                self.advance()
                continue
            self.expect(closing, opened)
            return items, keywords

    def name(self, first: _Token) -> Node:
        path = [first.text]
        while self.is_op(self.peek(), "."):
            self.advance()
            part = self.advance()
            if part.kind != "name":
                raise ExpressionError(f"expected a name after '.', found {_describe(part)}",
                                      self.text, part.position)
            path.append(part.text)
        if not self.is_op(self.peek(), "("):
            return Name(tuple(path), position=first.position)
        opening = self.peek()
        if len(path) > 1:
            raise ExpressionError(f"{'.'.join(path)!r} is not a function", self.text,
                                  opening.position, "only plain function names can be called")
        signature = self.signatures.get(first.text)
        if signature is None:
            raise ExpressionError(f"unknown function {first.text!r}", self.text,
                                  first.position,
                                  f"functions: {', '.join(sorted(self.signatures))}")
        self.advance()
        args, keywords = self.sequence(")", opening, allow_keywords=True)
        _check_call(signature, args, keywords, self.text, first.position)
        return Call(first.text, tuple(args), tuple((k, v) for k, v, _ in keywords),
                    position=first.position)


def _check_call(signature: Signature, args: list[Node],
                keywords: list[tuple[str, Node, _Token]], text: str, position: int) -> None:
    name = signature.name
    if signature.variadic:
        if keywords:
            raise ExpressionError(f"{name}() takes no keyword arguments", text,
                                  keywords[0][2].position)
    elif len(args) > len(signature.params):
        raise ExpressionError(
            f"{name}() takes at most {len(signature.params)} argument(s), got {len(args)}",
            text, args[len(signature.params)].position)
    given = set(signature.params[: len(args)])
    for keyword, _, token in keywords:
        if keyword not in signature.params:
            raise ExpressionError(f"{name}() has no parameter {keyword!r}", text,
                                  token.position,
                                  f"parameters: {', '.join(signature.params) or 'none'}")
        if keyword in given:
            raise ExpressionError(f"{name}() got {keyword!r} twice", text, token.position)
        given.add(keyword)
    count = len(args) if signature.variadic else len(given & set(
        signature.params[: signature.required]))
    if count < signature.required:
        raise ExpressionError(f"{name}() needs {signature.required} argument(s)", text,
                              position)


def _depth_check(root: Node, text: str) -> None:
    """Refuse trees deeper than MAX_DEPTH (long ``a + b + ...`` chains nest to the left)."""
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ExpressionError(f"expression nests more than {MAX_DEPTH} levels deep", text,
                                  node.position, "split it into several expressions or "
                                                 "use 'in [...]' for alternatives")
        stack.extend((child, depth + 1) for child in _children(node))


def parse(text: str, functions: Mapping[str, Signature] | None = None) -> Expression:
    """Parse ``text`` into an :class:`Expression`.

    ``functions`` adds the signatures of caller-provided functions to the built-in
    ones (whose implementations the caller then passes to ``evaluate``/``mask``).
    Raises :class:`ExpressionError` (never anything else) naming the column of the
    first problem.

    Examples
    --------
    >>> parse("(price + 1) * 2 > 10")
    Expression('(price + 1) * 2 > 10')
    >>> parse("price > 10)")
    Traceback (most recent call last):
    ...
    tailored.expressions.ExpressionError: unexpected token ')' at column 11
      price > 10)
                ^
    """
    if not isinstance(text, str):
        raise ExpressionError(f"an expression must be text, got {type(text).__name__}", "", 0)
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression is longer than {MAX_LENGTH} characters", text,
                              MAX_LENGTH)
    if not text.strip():
        raise ExpressionError("empty expression", text, 0)
    signatures = {name: signature for name, (signature, _) in BUILTINS.items()}
    signatures.update(functions or {})
    parser = _Parser(text, signatures)
    root = parser.expression()
    if parser.peek().kind != "end":
        raise parser.fail(parser.peek())
    _depth_check(root, text)
    return Expression(root, text)


# ---- printing -----------------------------------------------------------------------------


def _precedence(node: Node) -> int:
    if isinstance(node, Unary):
        return _NOT if node.op == "not" else _NEGATE
    if isinstance(node, Binary | Compare):
        return _INFIX[node.op]
    return _PRIMARY


def _literal_text(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value)
    for char, escaped in (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\t", "\\t"),
                          ("\r", "\\r")):
        text = text.replace(char, escaped)
    return f'"{text}"'


def to_text(node: Node) -> str:
    """The canonical text of a tree: ``parse(to_text(node))`` gives the same tree back.

    Parentheses are written only where precedence needs them.

    Examples
    --------
    >>> to_text(parse("((a)) and (b or c) and not 'x' in tags").root)
    'a and (b or c) and not "x" in tags'
    """
    def wrapped(child: Node, least: int) -> str:
        text = to_text(child)
        return f"({text})" if _precedence(child) < least else text

    if isinstance(node, Literal):
        return _literal_text(node.value)
    if isinstance(node, Name):
        return node.dotted
    if isinstance(node, ListLiteral):
        return "[" + ", ".join(to_text(item) for item in node.items) + "]"
    if isinstance(node, Call):
        parts = [to_text(arg) for arg in node.args]
        parts += [f"{key}={to_text(value)}" for key, value in node.keywords]
        return f"{node.function}({', '.join(parts)})"
    if isinstance(node, Unary):
        if node.op == "not":
            return "not " + wrapped(node.operand, _NOT)
        return "-" + wrapped(node.operand, _NEGATE)
    if isinstance(node, Compare):
        return f"{wrapped(node.left, _COMPARE + 1)} {node.op} {wrapped(node.right, _COMPARE + 1)}"
    if isinstance(node, Binary):
        precedence = _INFIX[node.op]
        return f"{wrapped(node.left, precedence)} {node.op} {wrapped(node.right, precedence + 1)}"
    raise TypeError(f"not an expression node: {node!r}")


# ---- values and scalar evaluation ---------------------------------------------------------


def normalise(value: Any) -> Any:
    """A caller's value as an expression value: numpy scalars become Python ones, lists
    and arrays become tuples; NaN, integers too large for a float and unsupported types
    (dates, mappings) become null."""
    if value is None or isinstance(value, bool | str):
        return str(value) if isinstance(value, np.str_) else value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value) if abs(int(value)) <= _LARGEST_NUMBER else None
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, list | tuple | np.ndarray | pd.Series):
        return tuple(normalise(v) for v in value)
    return None


def truthy(value: Any) -> bool:
    """Whether a value counts as true: null, false, 0, "" and [] do not."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if _number(value):
        return value != 0
    if isinstance(value, str | tuple):
        return len(value) > 0
    return False


def _equal(left: Any, right: Any) -> bool:
    if _number(left) and _number(right):
        return bool(left == right)
    if isinstance(left, tuple) and isinstance(right, tuple):
        return len(left) == len(right) and all(_equal(a, b)
                                               for a, b in zip(left, right, strict=True))
    if type(left) is type(right) and isinstance(left, bool | str):
        return bool(left == right)
    return False


def _compare(op: str, left: Any, right: Any) -> bool:
    """A comparison of two values; false whenever one of them is null."""
    if left is None or right is None:
        return False
    if op == "==":
        return _equal(left, right)
    if op == "!=":
        return not _equal(left, right)
    if op in ("in", "not in"):
        if isinstance(right, str):
            if not isinstance(left, str):
                return False
            found = left in right
        elif isinstance(right, tuple):
            found = any(_equal(left, item) for item in right)
        else:
            return False
        return found if op == "in" else not found
    both_numbers = _number(left) and _number(right)
    if not (both_numbers or (isinstance(left, str) and isinstance(right, str))):
        return False
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    return bool(left >= right)


def _arithmetic(op: str, left: Any, right: Any) -> Any:
    if _number(left) and _number(right):
        if op == "+":
            result = left + right
        elif op == "-":
            result = left - right
        elif op == "*":
            result = left * right
        elif right == 0:
            return None
        else:
            result = left / right
        return result if abs(result) <= _LARGEST_NUMBER else None  # inf, NaN: null
    if op == "+" and isinstance(left, str) and isinstance(right, str):
        return left + right
    return None


def _negate(value: Any) -> Any:
    return -value if _number(value) else None


def _lookup(names: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    dotted = ".".join(path)
    if dotted in names:
        return normalise(names[dotted])
    value: Any = names
    for part in path:
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return normalise(value)


def _null_test(node: Compare) -> Node | None:
    """The other operand of ``x == null`` / ``x != null``, which test for a missing value."""
    if node.op not in ("==", "!="):
        return None
    if isinstance(node.right, Literal) and node.right.value is None:
        return node.left
    if isinstance(node.left, Literal) and node.left.value is None:
        return node.right
    return None


Functions = Mapping[str, Callable[..., Any]]


def _implementations(functions: Functions | None) -> dict[str, Callable[..., Any]]:
    merged = {name: implementation for name, (_, implementation) in BUILTINS.items()}
    merged.update(functions or {})
    return merged


def _call(node: Call, functions: Mapping[str, Callable[..., Any]], args: Sequence[Any],
          keywords: Mapping[str, Any]) -> Any:
    implementation = functions.get(node.function)
    if implementation is None:
        raise ExpressionError(f"no implementation was given for {node.function}()", "", 0)
    return normalise(implementation(*args, **keywords))


def evaluate(node: Node, names: Mapping[str, Any],
             functions: Mapping[str, Callable[..., Any]]) -> Any:
    """The value of a tree over ``names`` (see :meth:`Expression.evaluate`)."""
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Name):
        return _lookup(names, node.path)
    if isinstance(node, ListLiteral):
        return tuple(evaluate(item, names, functions) for item in node.items)
    if isinstance(node, Call):
        return _call(node, functions, [evaluate(a, names, functions) for a in node.args],
                     {k: evaluate(v, names, functions) for k, v in node.keywords})
    if isinstance(node, Unary):
        operand = evaluate(node.operand, names, functions)
        return not truthy(operand) if node.op == "not" else _negate(operand)
    if isinstance(node, Compare):
        tested = _null_test(node)
        if tested is not None:
            missing = evaluate(tested, names, functions) is None
            return missing if node.op == "==" else not missing
        return _compare(node.op, evaluate(node.left, names, functions),
                        evaluate(node.right, names, functions))
    if isinstance(node, Binary):
        if node.op == "and":
            return truthy(evaluate(node.left, names, functions)) and truthy(
                evaluate(node.right, names, functions))
        if node.op == "or":
            return truthy(evaluate(node.left, names, functions)) or truthy(
                evaluate(node.right, names, functions))
        return _arithmetic(node.op, evaluate(node.left, names, functions),
                           evaluate(node.right, names, functions))
    raise TypeError(f"not an expression node: {node!r}")


# ---- vectorised evaluation over a frame ---------------------------------------------------


@dataclass
class _Column:
    """One value per row: ``kind`` is number (float64), bool, or object (Python values)."""

    values: np.ndarray
    null: np.ndarray
    kind: str

    def objects(self) -> np.ndarray:
        if self.kind == "object":
            return self.values
        out = np.empty(len(self.values), dtype=object)
        out[:] = self.values.tolist()
        out[self.null] = None
        return out


Operand = Any  # a scalar expression value or a _Column


def column_kind(series: pd.Series) -> str:
    """How :meth:`Expression.mask` reads a column: ``"bool"`` (no nulls) and ``"number"``
    as numpy arrays, ``"text"`` (strings and nulls) as an array of objects, ``"object"``
    (lists, mixed values) by converting each value in Python.

    Examples
    --------
    >>> [column_kind(pd.Series(values)) for values in ([1, None], ["a"], [["x"], []])]
    ['number', 'text', 'object']
    """
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        if not series.isna().any():
            return "bool"
    elif pd.api.types.is_numeric_dtype(dtype):
        return "number"
    if pd.api.types.infer_dtype(series, skipna=True) in ("string", "empty"):
        return "text"
    return "object"


def _from_series(series: pd.Series) -> _Column:
    kind = column_kind(series)
    null = series.isna().to_numpy(dtype=bool)
    if kind == "bool":
        return _Column(series.to_numpy(dtype=bool), null, "bool")
    if kind == "number":
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        return _Column(values, ~np.isfinite(values), "number")
    if kind == "text":
        values = series.to_numpy(dtype=object).copy()
        values[null] = None
        return _Column(values, null, "object")
    return _from_values([normalise(v) for v in series.tolist()], force_object=True)


def _from_values(values: list[Any], force_object: bool = False) -> _Column:
    null = np.fromiter((v is None for v in values), dtype=bool, count=len(values))
    present = [v for v in values if v is not None]
    if not force_object and present and not null.any() and all(
            isinstance(v, bool) for v in present):
        return _Column(np.asarray(values, dtype=bool), null, "bool")
    if not force_object and present and all(_number(v) for v in present):
        numbers = np.array([np.nan if v is None else float(v) for v in values])
        return _Column(numbers, ~np.isfinite(numbers), "number")
    return _Column(np.fromiter(values, dtype=object, count=len(values)), null, "object")


def _numeric(operand: Operand) -> bool:
    return (isinstance(operand, _Column) and operand.kind == "number") or _number(operand)


def _array(operand: Operand, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Values and null mask of a numeric operand (a column or a number)."""
    if isinstance(operand, _Column):
        return operand.values, operand.null
    return np.full(rows, float(operand)), np.zeros(rows, dtype=bool)


def _truth(operand: Operand, rows: int) -> np.ndarray:
    if not isinstance(operand, _Column):
        return np.full(rows, truthy(operand))
    if operand.kind == "bool":
        return operand.values & ~operand.null
    if operand.kind == "number":
        return (operand.values != 0) & ~operand.null
    return np.fromiter((truthy(v) for v in operand.values), dtype=bool, count=rows)


class _Frame:
    """Evaluates a tree over all rows of a frame at once (Python per row only when needed)."""

    def __init__(self, frame: pd.DataFrame, names: Mapping[str, Any],
                 functions: Mapping[str, Callable[..., Any]]) -> None:
        self.frame = frame
        self.rows = len(frame)
        self.names = names
        self.functions = functions
        self.columns: dict[str, _Column] = {}

    def column(self, path: tuple[str, ...]) -> _Column | None:
        key = ".".join(path)
        if key not in self.frame.columns:
            if len(path) == 2 and path[0] == "item" and path[1] in self.frame.columns:
                key = path[1]
            else:
                return None
        if key not in self.columns:
            self.columns[key] = _from_series(self.frame[key])
        return self.columns[key]

    def rowwise(self, function: Callable[..., Any], *operands: Operand) -> Operand:
        if not any(isinstance(o, _Column) for o in operands):
            return function(*operands)
        columns = [o.objects() if isinstance(o, _Column) else [o] * self.rows
                   for o in operands]
        return _from_values([function(*row) for row in zip(*columns, strict=True)])

    def value(self, node: Node) -> Operand:
        if isinstance(node, Literal):
            return node.value
        if isinstance(node, Name):
            column = self.column(node.path)
            return column if column is not None else _lookup(self.names, node.path)
        if isinstance(node, ListLiteral):
            return self.rowwise(lambda *items: tuple(items),
                                *(self.value(item) for item in node.items))
        if isinstance(node, Call):
            keys = [key for key, _ in node.keywords]
            operands = [self.value(a) for a in node.args] + [self.value(v)
                                                             for _, v in node.keywords]
            positional = len(node.args)

            def call(*values: Any) -> Any:
                return _call(node, self.functions, values[:positional],
                             dict(zip(keys, values[positional:], strict=True)))
            return self.rowwise(call, *operands)
        if isinstance(node, Unary):
            operand = self.value(node.operand)
            if node.op == "not":
                return _Column(~_truth(operand, self.rows), np.zeros(self.rows, bool), "bool")
            if isinstance(operand, _Column) and operand.kind == "number":
                return _Column(-operand.values, operand.null, "number")
            return self.rowwise(_negate, operand)
        if isinstance(node, Compare):
            return self.compare(node)
        if isinstance(node, Binary):
            left, right = self.value(node.left), self.value(node.right)
            if node.op in ("and", "or"):
                combine = np.logical_and if node.op == "and" else np.logical_or
                return _Column(combine(_truth(left, self.rows), _truth(right, self.rows)),
                               np.zeros(self.rows, bool), "bool")
            if _numeric(left) and _numeric(right) and (
                    isinstance(left, _Column) or isinstance(right, _Column)):
                return self.arithmetic(node.op, left, right)
            return self.rowwise(lambda a, b: _arithmetic(node.op, a, b), left, right)
        raise TypeError(f"not an expression node: {node!r}")

    def arithmetic(self, op: str, left: Operand, right: Operand) -> _Column:
        (a, a_null), (b, b_null) = _array(left, self.rows), _array(right, self.rows)
        with np.errstate(all="ignore"):
            if op == "+":
                result = a + b
            elif op == "-":
                result = a - b
            elif op == "*":
                result = a * b
            else:
                result = a / b
        null = a_null | b_null | ~np.isfinite(result)
        if op == "/":
            null |= b == 0
        return _Column(result, null, "number")

    def compare(self, node: Compare) -> Operand:
        tested = _null_test(node)
        if tested is not None:
            operand = self.value(tested)
            missing = operand.null if isinstance(operand, _Column) else operand is None
            return _Column(np.broadcast_to(missing if node.op == "==" else ~np.asarray(missing),
                                           (self.rows,)).copy(),
                           np.zeros(self.rows, bool), "bool")
        left, right = self.value(node.left), self.value(node.right)
        op = node.op
        if not isinstance(left, _Column) and not isinstance(right, _Column):
            return _compare(op, left, right)
        if op not in ("in", "not in") and _numeric(left) and _numeric(right):
            (a, a_null), (b, b_null) = _array(left, self.rows), _array(right, self.rows)
            result = {"==": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal,
                      ">": np.greater, ">=": np.greater_equal}[op](a, b)
            return _Column(result & ~a_null & ~b_null, np.zeros(self.rows, bool), "bool")
        if op in ("==", "!=") and isinstance(left, _Column) != isinstance(right, _Column):
            column, scalar = (left, right) if isinstance(left, _Column) else (right, left)
            if column.kind == "object" and isinstance(scalar, str):
                equal = np.asarray(column.values == scalar, dtype=bool)
                result = equal if op == "==" else ~equal
                return _Column(result & ~column.null, np.zeros(self.rows, bool), "bool")
        if op in ("in", "not in") and isinstance(left, _Column) and isinstance(right, tuple):
            found = self.membership(left, right)
            if found is not None:
                result = found if op == "in" else ~found
                return _Column(result & ~left.null, np.zeros(self.rows, bool), "bool")
        return self.rowwise(lambda a, b: _compare(op, a, b), left, right)

    def membership(self, column: _Column, options: tuple[Any, ...]) -> np.ndarray | None:
        """``column in [options]`` by hashing, for the common typed cases."""
        if column.kind == "number":
            numbers = [float(o) for o in options if _number(o)]
            return np.isin(column.values, numbers)
        if column.kind == "object" and all(isinstance(o, str) for o in options):
            return pd.Series(column.values, dtype=object).isin(options).to_numpy(dtype=bool)
        return None


# ---- what a mask costs ----------------------------------------------------------------------

#: What :meth:`Expression.cost` charges an operation for each row, in per-row Python
#: operations: one :meth:`Expression.mask` runs in Python on every row (a function call,
#: ``"x" in categories``, ordering text, the truth of a text column, reading a list
#: column; about a microsecond each) ...
PYTHON_COST: Final = 1.0
#: ... one numpy or pandas runs in C over Python objects (text ``==``, ``in [...]`` of
#: strings, reading a text column; tens of nanoseconds) ...
OBJECT_COST: Final = 0.05
#: ... and one numpy runs on numbers or booleans (comparisons, arithmetic, and/or/not;
#: a few nanoseconds).
VECTOR_COST: Final = 0.005

#: Which operand an operation gets, as ``(is a column, kind)``; a column's kind is
#: number, bool, object or any, a constant's null, bool, number, string, strings (a list
#: of strings), list or any. "any" is a kind not known before evaluation.
_Shape = tuple[bool, str]
_CONSTANT: Final = {type(None): "null", bool: "bool", int: "number", float: "number",
                    str: "string"}
#: What reading a column of each :func:`column_kind` costs, and the kind it then has.
_READ_COST: Final = {"bool": VECTOR_COST, "number": VECTOR_COST, "text": OBJECT_COST,
                     "object": PYTHON_COST}
_COLUMN_KIND: Final = {"bool": "bool", "number": "number", "text": "object",
                       "object": "object"}


class _Costing:
    """The cost per row of evaluating a tree over a frame, without evaluating it.

    It follows :class:`_Frame` node by node and charges each operation for each row
    by how it runs (``*_COST``). ``kinds`` gives each column of the frame its
    :func:`column_kind`; without them every item name is a column of unknown kind. A
    kind not known before evaluation is charged as its dearest case, so the estimate
    is never below what a mask does in Python per row.
    """

    def __init__(self, kinds: Mapping[str, str] | None) -> None:
        self.kinds = kinds
        self.read: set[str] = set()
        self.per_row = 0.0

    def column(self, path: tuple[str, ...]) -> _Shape | None:
        """The column a name reads (charged once, as ``_Frame`` reads it once), or None."""
        key = ".".join(path)
        if self.kinds is None:
            if path[0] in ("user", "context"):
                return None
            kind = "unknown"
        elif key in self.kinds:
            kind = self.kinds[key]
        elif len(path) == 2 and path[0] == "item" and path[1] in self.kinds:
            key = path[1]
            kind = self.kinds[key]
        else:
            return None
        if key not in self.read:
            self.read.add(key)
            self.per_row += _READ_COST.get(kind, PYTHON_COST)
        return True, _COLUMN_KIND.get(kind, "any")

    def truth(self, shape: _Shape) -> None:
        """What ``_truth`` costs: numpy on bools and numbers, Python on anything else."""
        if shape[0]:
            self.per_row += VECTOR_COST if shape[1] in ("bool", "number") else PYTHON_COST

    def value(self, node: Node) -> _Shape:
        if isinstance(node, Literal):
            return False, _CONSTANT[type(node.value)]
        if isinstance(node, Name):
            return self.column(node.path) or (False, "any")
        if isinstance(node, ListLiteral):
            items = [self.value(item) for item in node.items]
            if any(column for column, _ in items):
                self.per_row += PYTHON_COST
                return True, "object"
            return False, "strings" if all(kind == "string" for _, kind in items) else "list"
        if isinstance(node, Call):
            operands = [self.value(a) for a in (*node.args, *(v for _, v in node.keywords))]
            if any(column for column, _ in operands):
                self.per_row += PYTHON_COST
                return True, "any"
            return False, "any"
        if isinstance(node, Unary):
            operand = self.value(node.operand)
            if node.op == "not":
                self.truth(operand)
                self.per_row += VECTOR_COST
                return True, "bool"
            if not operand[0]:
                return False, "number" if operand[1] == "number" else "any"
            if operand[1] == "number":
                self.per_row += VECTOR_COST
                return True, "number"
            self.per_row += PYTHON_COST
            return True, "any"
        if isinstance(node, Compare):
            return self.compare(node)
        if isinstance(node, Binary):
            left, right = self.value(node.left), self.value(node.right)
            if node.op in ("and", "or"):
                self.truth(left)
                self.truth(right)
                self.per_row += VECTOR_COST
                return True, "bool"
            if not (left[0] or right[0]):
                both = "string" if node.op == "+" and left[1] == right[1] == "string" else "any"
                return False, both
            if left[1] == right[1] == "number":
                self.per_row += VECTOR_COST
                return True, "number"
            self.per_row += PYTHON_COST
            return True, "any"
        raise TypeError(f"not an expression node: {node!r}")

    def compare(self, node: Compare) -> _Shape:
        tested = _null_test(node)
        if tested is not None:
            self.value(tested)
            self.per_row += VECTOR_COST
            return True, "bool"
        left, right = self.value(node.left), self.value(node.right)
        if not (left[0] or right[0]):
            return False, "bool"
        kinds = (left[1], right[1])
        if node.op in ("in", "not in"):  # by hashing when a column meets a list
            listed = left[0] and not right[0] and right[1] in ("strings", "list")
            if listed and left[1] == "number":
                self.per_row += VECTOR_COST
            elif listed and kinds == ("object", "strings"):
                self.per_row += OBJECT_COST
            else:
                self.per_row += PYTHON_COST
        elif kinds == ("number", "number"):
            self.per_row += VECTOR_COST
        elif node.op in ("==", "!=") and (left, right) in (
                ((True, "object"), (False, "string")), ((False, "string"), (True, "object"))):
            self.per_row += OBJECT_COST
        else:
            self.per_row += PYTHON_COST
        return True, "bool"


# ---- the public object --------------------------------------------------------------------


@dataclass(frozen=True)
class Expression:
    """A parsed expression: evaluate it over names, or over a frame row by row at once.

    Two expressions are equal when their trees are (the text's spacing and
    parentheses do not matter); ``str`` gives the canonical text.
    """

    root: Node
    text: str = field(default="", compare=False)

    def __str__(self) -> str:
        return to_text(self.root)

    def __repr__(self) -> str:
        return f"Expression({str(self)!r})"

    def nodes(self) -> Iterator[Node]:
        """Every node of the tree, parents first."""
        return walk(self.root)

    @property
    def names(self) -> frozenset[str]:
        """The dotted names the expression reads."""
        return frozenset(node.dotted for node in self.nodes() if isinstance(node, Name))

    def evaluate(self, names: Mapping[str, Any] | None = None,
                 functions: Functions | None = None) -> Any:
        """The value over ``names``.

        ``names`` maps a dotted name (``"user.location"``) or its first part
        (``"user"`` to a mapping holding ``"location"``) to a value. ``functions``
        implements the caller's own functions declared to :func:`parse`.

        Examples
        --------
        >>> parse("lower(user.city) in ['berlin', 'paris']").evaluate({"user.city": "Paris"})
        True
        >>> parse("price * 2").evaluate({}) is None   # a missing name is null
        True
        """
        return evaluate(self.root, names or {}, _implementations(functions))

    def holds(self, names: Mapping[str, Any] | None = None,
              functions: Functions | None = None) -> bool:
        """Whether the expression is true over ``names`` (see :func:`truthy`)."""
        return truthy(self.evaluate(names, functions))

    def mask(self, frame: pd.DataFrame, extra_names: Mapping[str, Any] | None = None,
             functions: Functions | None = None) -> np.ndarray:
        """Where the expression holds, one boolean per row of ``frame``.

        A column ``price`` is visible as ``price`` and as ``item.price``; any other
        name is looked up in ``extra_names`` (the same for every row, e.g. the user's
        attributes). Numeric comparisons, string equality and ``in [...]`` run as
        numpy operations; other operations fall back to Python per row, with the same
        results as :meth:`evaluate` on each row.

        Examples
        --------
        >>> catalog = pd.DataFrame({"city": ["Berlin", "Paris"], "price": [5.0, None]})
        >>> parse("city == user.city or price > 1").mask(
        ...     catalog, {"user": {"city": "Paris"}}).tolist()
        [True, True]
        """
        evaluator = _Frame(frame, extra_names or {}, _implementations(functions))
        return _truth(evaluator.value(self.root), len(frame))

    def cost(self, rows: int, kinds: Mapping[str, str] | None = None) -> float:
        """What :meth:`mask` would cost over a frame of ``rows`` rows, estimated from
        the tree alone: each operation charged for each row by how it runs, in per-row
        Python operations (:data:`PYTHON_COST`; numpy's work on numbers counts
        :data:`VECTOR_COST`, on text :data:`OBJECT_COST`).

        ``kinds`` gives the frame's columns by name with their :func:`column_kind`;
        without them every item name counts as a column that may need Python per row.
        Where the kind of a value is not known until evaluation, the dearer way is
        charged, so the estimate is not below what the mask does in Python.

        Examples
        --------
        >>> kinds = {"price": "number", "title": "text"}
        >>> round(parse("price < 100 and price > 10").cost(1_000, kinds), 3)   # numpy only
        35.0
        >>> round(parse('lower(title) == "dune"').cost(1_000, kinds), 3)  # Python per row
        2055.0
        """
        costing = _Costing(kinds)
        costing.truth(costing.value(self.root))
        return costing.per_row * rows
