"""HTTP connectors for Dataverse and Dynamics 365 Finance.

One request path (``http.ServiceClient``) gives both services the same behaviour: one pooled async
client per service, bearer tokens (``auth``), adaptive concurrency with a Retry-After cool-down gate
(``concurrency``), a time-bounded retry policy (``retry``) and typed errors (``errors``).
"""

from shared.connectors.dataverse import ChangePage, DataverseConnector, bind
from shared.connectors.errors import (
    Auth,
    Conflict,
    ConnectorError,
    DeltaTokenExpired,
    ForeignLink,
    LookupTargetMissing,
    MessageUnsupported,
    NotFound,
    Precondition,
    Service,
    Throttled,
    Transient,
    Validation,
)
from shared.connectors.finance import FinanceConnector
from shared.connectors.odata import EnumValue, filter_expr, key_segment, literal
from shared.connectors.writes import Delete, Upsert, Write, WriteResult

__all__ = [
    "Auth",
    "ChangePage",
    "Conflict",
    "ConnectorError",
    "DataverseConnector",
    "Delete",
    "DeltaTokenExpired",
    "EnumValue",
    "FinanceConnector",
    "ForeignLink",
    "LookupTargetMissing",
    "MessageUnsupported",
    "NotFound",
    "Precondition",
    "Service",
    "Throttled",
    "Transient",
    "Upsert",
    "Validation",
    "Write",
    "WriteResult",
    "bind",
    "filter_expr",
    "key_segment",
    "literal",
]
