"""``$filter``: parse to a small AST, then evaluate it in Python or compile it to SQLite SQL.

Grammar (precedence low to high): ``or``, ``and``, ``not``, comparison
(``eq ne gt ge lt le``), then primaries: ``( expr )``, a literal, a property path (``name`` or
``nav/name``), or a function call ``contains(p, 'x')``, ``startswith(p, 'x')``, ``endswith(p, 'x')``.

Both evaluators use the same rule for nulls: ``eq null``/``ne null`` test presence; any other
comparison with a null is false (OData semantics). String comparisons are case-insensitive, as
they are in Dataverse (SQL Server collation) and Finance.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Union

from sandbox.odata.literals import ODataSyntaxError, Token, token_literal, tokenize

COMPARISONS = ("eq", "ne", "gt", "ge", "lt", "le")
FUNCTIONS = ("contains", "startswith", "endswith")


@dataclass(frozen=True, slots=True)
class Literal:
    value: Any


@dataclass(frozen=True, slots=True)
class Property:
    path: tuple[str, ...]

    @property
    def name(self) -> str:
        return "/".join(self.path)


@dataclass(frozen=True, slots=True)
class Compare:
    op: str
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class BoolOp:
    op: str  # "and" | "or"
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    args: tuple[Node, ...]


Node = Union[Literal, Property, Compare, BoolOp, Not, Call]  # noqa: UP007 - runtime alias


def parse_filter(text: str) -> Node:
    """Parse a ``$filter`` expression; raises :class:`ODataSyntaxError` with a position."""
    parser = _Parser(text, tokenize(text))
    if not parser.tokens:
        raise ODataSyntaxError("The $filter expression is empty.", text, 0)
    node = parser.expr()
    if parser.i < len(parser.tokens):
        tok = parser.tokens[parser.i]
        raise ODataSyntaxError(
            f"Syntax error at position {tok.pos} in '{text}'.", text, tok.pos)
    return node


class _Parser:
    def __init__(self, text: str, tokens: list[Token]) -> None:
        self.text, self.tokens, self.i = text, tokens, 0

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def is_word(self, word: str) -> bool:
        tok = self.peek()
        return tok is not None and tok.kind == "ident" and tok.text == word

    def error(self, what: str) -> ODataSyntaxError:
        tok = self.peek()
        pos = tok.pos if tok else len(self.text)
        return ODataSyntaxError(f"Syntax error at position {pos} in '{self.text}': {what}.", self.text, pos)

    def expect(self, kind: str) -> Token:
        tok = self.peek()
        if tok is None or tok.kind != kind:
            raise self.error(f"expected '{kind}'")
        self.i += 1
        return tok

    def expr(self) -> Node:
        node = self.and_expr()
        while self.is_word("or"):
            self.i += 1
            node = BoolOp("or", node, self.and_expr())
        return node

    def and_expr(self) -> Node:
        node = self.not_expr()
        while self.is_word("and"):
            self.i += 1
            node = BoolOp("and", node, self.not_expr())
        return node

    def not_expr(self) -> Node:
        if self.is_word("not"):
            self.i += 1
            return Not(self.not_expr())
        return self.comparison()

    def comparison(self) -> Node:
        left = self.primary()
        tok = self.peek()
        if tok is not None and tok.kind == "ident" and tok.text in COMPARISONS:
            self.i += 1
            return Compare(tok.text, left, self.primary())
        return left

    def primary(self) -> Node:
        tok = self.peek()
        if tok is None:
            raise self.error("the expression ends early")
        if tok.kind == "(":
            self.i += 1
            node = self.expr()
            self.expect(")")
            return node
        ok, value = token_literal(tok)
        if ok:
            self.i += 1
            return Literal(value)
        if tok.kind != "ident":
            raise self.error(f"unexpected '{tok.text}'")
        self.i += 1
        nxt = self.peek()
        if nxt is not None and nxt.kind == "(":
            return self.call(tok)
        if tok.text in COMPARISONS or tok.text in ("and", "or", "not"):
            raise ODataSyntaxError(f"Syntax error at position {tok.pos} in '{self.text}': "
                                   f"unexpected operator '{tok.text}'.", self.text, tok.pos)
        return Property(tuple(tok.text.split("/")))

    def call(self, name_tok: Token) -> Node:
        name = name_tok.text
        if name not in FUNCTIONS:
            raise ODataSyntaxError(f"An unknown function with name '{name}' was found. "
                                   "This may also be a function import or a key lookup on a navigation property, "
                                   "which is not allowed.", self.text, name_tok.pos)
        self.expect("(")
        args = [self.expr()]
        while (tok := self.peek()) is not None and tok.kind == ",":
            self.i += 1
            args.append(self.expr())
        self.expect(")")
        if len(args) != 2:
            raise ODataSyntaxError(f"No function signature for the function with name '{name}' matches the "
                                   "specified arguments.", self.text, name_tok.pos)
        return Call(name, tuple(args))


def properties(node: Node) -> list[Property]:
    """Every property referenced by ``node`` (to validate names before evaluating)."""
    if isinstance(node, Property):
        return [node]
    if isinstance(node, Compare | BoolOp):
        return properties(node.left) + properties(node.right)
    if isinstance(node, Not):
        return properties(node.operand)
    if isinstance(node, Call):
        return [p for a in node.args for p in properties(a)]
    return []


# --- Python evaluation -------------------------------------------------------------------------

def _norm(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def evaluate(node: Node, row: Mapping[str, Any],
             coerce: Callable[[Any, Any], tuple[Any, Any]] | None = None) -> bool:
    """True when ``row`` matches. ``coerce(a, b)`` may convert the two sides of a comparison to
    comparable values (e.g. an ISO string column against a datetime literal)."""
    return bool(_eval(node, row, coerce))


def _eval(node: Node, row: Mapping[str, Any], coerce: Callable[[Any, Any], tuple[Any, Any]] | None) -> Any:
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Property):
        return row.get(node.name)
    if isinstance(node, BoolOp):
        left = bool(_eval(node.left, row, coerce))
        if node.op == "and":
            return left and bool(_eval(node.right, row, coerce))
        return left or bool(_eval(node.right, row, coerce))
    if isinstance(node, Not):
        return not _eval(node.operand, row, coerce)
    if isinstance(node, Call):
        a, b = (_eval(x, row, coerce) for x in node.args)
        if not isinstance(a, str) or not isinstance(b, str):
            return False
        a, b = a.casefold(), b.casefold()
        return {"contains": b in a, "startswith": a.startswith(b), "endswith": a.endswith(b)}[node.name]
    assert isinstance(node, Compare)
    a, b = _eval(node.left, row, coerce), _eval(node.right, row, coerce)
    if a is None or b is None:
        if node.op == "eq":
            return a is None and b is None
        if node.op == "ne":
            return (a is None) != (b is None)
        return False
    if coerce is not None:
        a, b = coerce(a, b)
    a, b = _norm(a), _norm(b)
    try:
        return {"eq": lambda: a == b, "ne": lambda: a != b, "gt": lambda: a > b, "ge": lambda: a >= b,
                "lt": lambda: a < b, "le": lambda: a <= b}[node.op]()
    except TypeError:
        return False


# --- SQL compilation ---------------------------------------------------------------------------

_SQL_OPS = {"eq": "=", "ne": "<>", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}


@dataclass(frozen=True)
class SqlColumn:
    """How a property maps to SQL: the column expression and how to convert a literal compared to it
    (the converter raises ``ValueError``/``TypeError`` for a literal of the wrong type)."""

    expr: str
    convert: Callable[[Any], Any] = lambda v: v


def to_sql(node: Node, column: Callable[[Property], SqlColumn]) -> tuple[str, list[Any]]:
    """Compile to a SQLite WHERE fragment with ``?`` parameters.

    ``column(prop)`` resolves a property (raise your own error type for unknown names). Columns
    should be declared ``COLLATE NOCASE`` for text so comparisons ignore case like the real services.
    """
    params: list[Any] = []
    sql = _sql(node, column, params)
    return sql, params


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _sql(node: Node, column: Callable[[Property], SqlColumn], params: list[Any]) -> str:
    if isinstance(node, BoolOp):
        return f"({_sql(node.left, column, params)} {node.op.upper()} {_sql(node.right, column, params)})"
    if isinstance(node, Not):
        return f"(NOT COALESCE({_sql(node.operand, column, params)}, 0))"
    if isinstance(node, Call):
        prop, lit = node.args
        if not isinstance(prop, Property) or not isinstance(lit, Literal) or not isinstance(lit.value, str):
            raise ODataSyntaxError(f"The function '{node.name}' needs a property and a string literal.")
        col = column(prop)
        pattern = _escape_like(lit.value)
        pattern = {"contains": f"%{pattern}%", "startswith": f"{pattern}%", "endswith": f"%{pattern}"}[node.name]
        params.append(pattern)
        return f"({col.expr} LIKE ? ESCAPE '\\')"
    if isinstance(node, Compare):
        return _compare_sql(node, column, params)
    if isinstance(node, Literal):
        if isinstance(node.value, bool):
            return "1" if node.value else "0"
        raise ODataSyntaxError("A binary operator with incompatible types was detected: a bare literal "
                               "is not a boolean expression.")
    col = column(node)  # a bare boolean property
    return f"({col.expr} = 1)"


def _compare_sql(node: Compare, column: Callable[[Property], SqlColumn], params: list[Any]) -> str:
    left, right, op = node.left, node.right, node.op
    if isinstance(left, Literal) and isinstance(right, Property):  # 5 lt x  ->  x gt 5
        left, right = right, left
        op = {"gt": "lt", "lt": "gt", "ge": "le", "le": "ge"}.get(op, op)
    if isinstance(left, Property) and isinstance(right, Literal):
        col = column(left)
        if right.value is None:
            if op in ("eq", "ne"):
                return f"({col.expr} IS {'NOT ' if op == 'ne' else ''}NULL)"
            return "0"
        params.append(col.convert(right.value))
        if op == "ne":  # null ne 'x' is true in OData; SQL's <> would give NULL
            return f"({col.expr} IS NOT ?)"
        return f"({col.expr} {_SQL_OPS[op]} ?)"
    if isinstance(left, Property) and isinstance(right, Property):
        a, b = column(left).expr, column(right).expr
        if op == "eq":
            return f"({a} IS {b})"
        if op == "ne":
            return f"({a} IS NOT {b})"
        return f"({a} {_SQL_OPS[op]} {b})"
    if isinstance(left, Literal) and isinstance(right, Literal):
        params.append(1 if evaluate(node, {}) else 0)
        return "(? = 1)"
    raise ODataSyntaxError("A binary operator with incompatible types was detected: comparisons need a "
                           "property or a literal on each side.")
