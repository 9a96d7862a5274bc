"""Mask obvious secrets before anything is stored (promise 8: secrets never reach error records).

Callers scrub payloads themselves; this is the store's own last line of defence.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MASK = "***"

# Compared after lower-casing and dropping "-", "_" and spaces, so "Client-Secret" matches too.
_SECRET_KEYS = frozenset(
    {
        "authorization",
        "proxyauthorization",
        "clientsecret",
        "secret",
        "password",
        "passwd",
        "pwd",
        "token",
        "accesstoken",
        "refreshtoken",
        "idtoken",
        # not plain "key": in our payloads it is a record's integration key (a notification's "key"), and
        # masking it made kept notifications unreplayable; named keys (api, account, access) stay secret
        "apikey",
        "accountkey",
        "sharedaccesskey",
        "sharedaccesssignature",
        "connectionstring",
        "xdualsynckey",
        "xfunctionskey",
    }
)
# Suffixes catch e.g. "webhook_secret", "sas_token", "storage_connection_string".
_SECRET_SUFFIXES = ("secret", "password", "token", "connectionstring", "accesskey", "apikey")
# Paging and change-tracking cursors end in "token" but are not credentials.
_NOT_SECRET = frozenset(
    {"deltatoken", "skiptoken", "continuationtoken", "changetoken", "synctoken", "pagetoken"}
)

# key=value secrets inside strings (connection strings, SAS tokens) and bearer tokens.
_INLINE = re.compile(
    r"(?P<name>SharedAccessKey|SharedAccessSignature|AccountKey|Password|Pwd|ClientSecret|sig)"
    r"(?P<sep>\s*=\s*)(?P<value>[^;&\s\"']+)",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(?P<name>Bearer|Basic)(?P<sep>\s+)(?P<value>[A-Za-z0-9\-._~+/]+=*)", re.IGNORECASE)


def is_secret_key(name: str) -> bool:
    norm = re.sub(r"[-_\s.$@]", "", name).lower()
    if norm in _NOT_SECRET:
        return False
    return norm in _SECRET_KEYS or norm.endswith(_SECRET_SUFFIXES)


def scrub_text(text: str) -> str:
    text = _INLINE.sub(lambda m: f"{m['name']}{m['sep']}{MASK}", text)
    return _BEARER.sub(lambda m: f"{m['name']}{m['sep']}{MASK}", text)


def _key_value_pair(obj: Mapping[Any, Any]) -> tuple[str, str] | None:
    """The member names of a ``{"key": name, "value": v}`` pair (Dataverse's serialised collections)."""
    if not 2 <= len(obj) <= 3 or not all(isinstance(k, str) for k in obj):
        return None
    names = {k.lower(): k for k in obj}
    # a data-contract pair may carry its "__type" (KeyValuePairOfstringstring:#System.Collections.Generic)
    if set(names) - {"__type"} != {"key", "value"} or not isinstance(obj[names["key"]], str):
        return None
    return names["key"], names["value"]


def scrub(obj: Any) -> Any:
    """A copy of ``obj`` (JSON-like: dicts, lists, strings, scalars) with secret values masked.

    In a key/value pair the ``key`` is a name: kept, and the value masked when it names a secret.
    """
    if isinstance(obj, Mapping) and (pair := _key_value_pair(obj)) is not None:
        key, value = pair
        name, v = obj[key], obj[value]
        out = {k: scrub(x) for k, x in obj.items() if k not in (key, value)}
        out[key] = scrub_text(name)
        out[value] = MASK if is_secret_key(name) and v not in (None, "") else scrub(v)
        return {k: out[k] for k in obj}  # same member order
    if isinstance(obj, Mapping):
        return {
            k: (MASK if isinstance(k, str) and is_secret_key(k) and v not in (None, "") else scrub(v))
            for k, v in obj.items()
        }
    if isinstance(obj, list | tuple):
        return [scrub(v) for v in obj]
    if isinstance(obj, str):
        return scrub_text(obj)
    return obj
