"""OData pieces shared by the Dataverse and Finance emulators. Stable API (import from here):

Literals and errors (``sandbox.odata.literals``)
    ``ODataSyntaxError(message, text, position)`` — every parse error; a client error (HTTP 400).
    ``parse_literal("'a'") -> "a"``; ints -> ``int``, decimals -> ``Decimal``, GUIDs -> ``uuid.UUID``,
    date-times -> aware UTC ``datetime``, dates -> ``date``, ``null``/``true``/``false``,
    ``Ns.Enum'Member'`` -> ``EnumLiteral(type_name, member)``. ``format_literal(value)`` is the inverse.
    ``parse_datetime(text)`` -> aware UTC datetime.

Key segments (``sandbox.odata.keys``)
    ``parse_segment("accounts(accountnumber='A')") -> ("accounts", Key(values={"accountnumber": "A"}))``;
    ``parse_segment("accounts(<guid>)") -> ("accounts", Key(single=UUID(...)))`` (``key.is_single``);
    ``parse_segment("accounts") -> ("accounts", None)``; ``parse_key(text)``; ``split_segment``;
    ``parse_entity_ref("/accounts(<guid>)" | absolute URL, service_root_path=None) -> EntityRef(entity_set, key)``.

``$filter`` (``sandbox.odata.filter``)
    ``parse_filter(text) -> Node`` (``Literal``, ``Property(path)``, ``Compare(op, l, r)``,
    ``BoolOp("and"|"or", l, r)``, ``Not``, ``Call("contains"|"startswith"|"endswith", args)``);
    ``properties(node)`` lists referenced properties;
    ``evaluate(node, row, coerce=None) -> bool`` evaluates in Python over a dict row;
    ``to_sql(node, column) -> (sql, params)`` compiles to SQLite, ``column(Property) -> SqlColumn(expr, convert)``.

Other query options (``sandbox.odata.query``)
    ``parse_select``, ``parse_orderby -> [OrderBy(name, descending)]``,
    ``parse_expand -> [Expand(navigation, select, options)]``, ``parse_top``, ``split_top_level``.

``$batch`` (``sandbox.odata.batch``)
    ``parse_batch(body, content_type) -> [BatchPart]`` (a ``BatchRequest`` or a ``ChangeSet`` of them);
    ``write_batch_response(items) -> (body bytes, content_type)``.

``$metadata`` (``sandbox.odata.csdl``)
    ``EdmEntityType``/``EdmProperty``/``EdmNavigation`` + ``write_csdl(namespace, types, container, sets)``.
"""

from sandbox.odata.filter import (
    BoolOp,
    Call,
    Compare,
    Literal,
    Node,
    Not,
    Property,
    SqlColumn,
    evaluate,
    parse_filter,
    properties,
    to_sql,
)
from sandbox.odata.keys import EntityRef, Key, parse_entity_ref, parse_key, parse_segment, split_segment
from sandbox.odata.literals import (
    EnumLiteral,
    ODataSyntaxError,
    format_literal,
    parse_datetime,
    parse_literal,
)
from sandbox.odata.query import Expand, OrderBy, parse_expand, parse_orderby, parse_select, parse_top

__all__ = [
    "BoolOp", "Call", "Compare", "EntityRef", "EnumLiteral", "Expand", "Key", "Literal", "Node", "Not",
    "ODataSyntaxError", "OrderBy", "Property", "SqlColumn", "evaluate", "format_literal", "parse_datetime",
    "parse_entity_ref", "parse_expand", "parse_filter", "parse_key", "parse_literal", "parse_orderby",
    "parse_segment", "parse_select", "parse_top", "properties", "split_segment", "to_sql",
]
