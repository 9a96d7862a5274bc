"""Query options of a collection GET: ``$filter``, ``$select``, ``$orderby``, ``$top``, ``$skip``,
``$count`` and ``cross-company``, compiled to SQL against :mod:`sandbox.finance.store`.

Finance specifics: enum literals (``Microsoft.Dynamics.DataEntities.NoYes'Yes'``) compare with enum
fields; ``eq '*text*'`` is a wildcard match (``'abc*'``, ``'*abc'`` too); dates compare as UTC text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sandbox.finance.errors import BadRequest
from sandbox.finance.schema import COMPANY_FIELD, Entity, Field, Schema, format_datetime
from sandbox.finance.store import q
from sandbox.odata.filter import (
    BoolOp,
    Call,
    Compare,
    Literal,
    Node,
    Not,
    Property,
    SqlColumn,
    parse_filter,
    to_sql,
)
from sandbox.odata.literals import EnumLiteral, ODataSyntaxError

SUPPORTED_OPTIONS = frozenset({"$filter", "$select", "$orderby", "$top", "$skip", "$count", "$format",
                               "$skiptoken", "cross-company", "$expand"})


@dataclass
class Query:
    where: str
    params: list[Any]
    order: str
    top: int | None
    skip: int
    select: list[str] | None
    count: bool


def _field(ent: Entity, schema: Schema, name: str) -> Field:
    f = ent.fields.get(name)
    if f is None:
        raise BadRequest(f"Could not find a property named '{name}' on type '{schema.namespace}.{ent.name}'.")
    return f


def _converter(schema: Schema, f: Field) -> Any:
    type_name = f"{schema.namespace}.{f.enum}" if f.enum else ""

    def convert(value: Any) -> Any:
        if f.type in ("String",):
            if not isinstance(value, str):
                raise BadRequest(f"A binary operator with incompatible types was detected. Found operand types "
                                 f"'Edm.String' and '{_edm(value)}' for operator kind 'Equal'.")
            return value
        if f.type == "Enum":
            if isinstance(value, EnumLiteral):
                if value.type_name != type_name:
                    raise BadRequest(f"The enum type '{value.type_name}' does not match '{type_name}'.")
                member = value.member
            elif isinstance(value, str):
                member = value
            else:
                raise BadRequest(f"A binary operator with incompatible types was detected for enum '{type_name}'.")
            for m in schema.enums[f.enum or ""]:
                if m.lower() == member.lower():
                    return m
            raise BadRequest(f"The string '{member}' is not a valid enumeration type constant for '{type_name}'.")
        if f.type in ("Int", "Int64", "Real"):
            if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
                raise BadRequest(f"A binary operator with incompatible types was detected. Found operand types "
                                 f"'Edm.Decimal' and '{_edm(value)}'.")
            return float(value) if f.type == "Real" else int(value)
        if f.type in ("Date", "DateTime"):
            if isinstance(value, datetime):
                return format_datetime(value)
            if isinstance(value, date):
                return f"{value.isoformat()}T00:00:00Z"
            raise BadRequest(f"A binary operator with incompatible types was detected. Found operand types "
                             f"'Edm.DateTimeOffset' and '{_edm(value)}'.")
        return value

    return convert


def _edm(value: Any) -> str:
    if isinstance(value, str):
        return "Edm.String"
    if isinstance(value, bool):
        return "Edm.Boolean"
    if isinstance(value, int):
        return "Edm.Int32"
    if isinstance(value, Decimal | float):
        return "Edm.Decimal"
    if isinstance(value, datetime):
        return "Edm.DateTimeOffset"
    if isinstance(value, EnumLiteral):
        return value.type_name
    return type(value).__name__


def _wildcards(node: Node) -> Node:
    """F&O's ``eq '*x*'`` wildcard -> the parser's contains/startswith/endswith calls."""
    if isinstance(node, BoolOp):
        return BoolOp(node.op, _wildcards(node.left), _wildcards(node.right))
    if isinstance(node, Not):
        return Not(_wildcards(node.operand))
    if (isinstance(node, Compare) and node.op in ("eq", "ne") and isinstance(node.left, Property)
            and isinstance(node.right, Literal) and isinstance(node.right.value, str) and "*" in node.right.value):
        text: str = node.right.value
        inner = text.strip("*")
        if "*" in inner:
            return node  # a wildcard in the middle: compared literally
        fn = ("contains" if text.startswith("*") and text.endswith("*") and len(text) > 1
              else "startswith" if text.endswith("*") else "endswith")
        call: Node = Call(fn, (node.left, Literal(inner)))
        return Not(call) if node.op == "ne" else call
    return node


def _int_option(params: dict[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw is None:
        return None
    if not raw.strip().isdigit():
        raise BadRequest(f"Invalid value '{raw}' for {name} query option found. The {name} query option "
                         "requires a non-negative integer value.")
    return int(raw)


def build_query(schema: Schema, ent: Entity, params: dict[str, str], default_company: str) -> Query:
    for name in params:
        if name.startswith("$") and name not in SUPPORTED_OPTIONS:
            raise BadRequest(f"The query parameter '{name}' is not supported.")
    if params.get("$expand"):
        raise BadRequest(f"Could not find a property named '{params['$expand'].split(',')[0].strip()}' on type "
                         f"'{schema.namespace}.{ent.name}'.")
    where_parts: list[str] = []
    sql_params: list[Any] = []
    cross = params.get("cross-company", "").lower() == "true"
    if ent.company and not cross:
        where_parts.append(f"{q(COMPANY_FIELD)} = ?")
        sql_params.append(default_company)
    text = params.get("$filter")
    if text is not None:
        try:
            node = _wildcards(parse_filter(text))

            def column(prop: Property) -> SqlColumn:
                f = _field(ent, schema, prop.name)
                return SqlColumn(q(f.name), _converter(schema, f))

            sql, p = to_sql(node, column)
        except ODataSyntaxError as exc:
            raise BadRequest(str(exc)) from None
        where_parts.append(sql)
        sql_params.extend(p)
    order_parts: list[str] = []
    for item in filter(None, (s.strip() for s in params.get("$orderby", "").split(","))):
        bits = item.split()
        if len(bits) > 2 or (len(bits) == 2 and bits[1].lower() not in ("asc", "desc")):
            raise BadRequest(f"Syntax error in $orderby: '{item}'.")
        f = _field(ent, schema, bits[0])
        order_parts.append(f"{q(f.name)} {'DESC' if len(bits) == 2 and bits[1].lower() == 'desc' else 'ASC'}")
    if order_parts:
        order_parts.append("_id")  # stable pages under equal sort values
    select: list[str] | None = None
    if params.get("$select"):
        select = []
        for name in (s.strip() for s in params["$select"].split(",")):
            if name == "*":
                select = None
                break
            select.append(_field(ent, schema, name).name)
    count_raw = params.get("$count", "false").lower()
    if count_raw not in ("true", "false"):
        raise BadRequest(f"'{params['$count']}' is not a valid count option.")
    return Query(
        where=" AND ".join(where_parts), params=sql_params, order=", ".join(order_parts),
        top=_int_option(params, "$top"), skip=_int_option(params, "$skip") or 0, select=select,
        count=count_raw == "true",
    )
