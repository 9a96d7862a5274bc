"""PartitionKey / RowKey encoding for Table Storage.

Table Storage forbids ``/ \\ # ?`` and control characters (U+0000-U+001F, U+007F-U+009F) in keys and
caps each key at 1 KiB. Integration keys are free text (composite keys, company ids, names with
slashes), so keys are percent-escaped, with ``%`` itself escaped to keep the mapping reversible.
A key too long after escaping keeps a readable head and ends in a hash; the original text is always
stored in an ordinary property too, so nothing ever needs decoding from a hashed key.
"""

from __future__ import annotations

import hashlib
import re

# 1 KiB is measured in UTF-16 bytes; 400 characters of escaped text stays well below it.
MAX_KEY_CHARS = 400
_FORBIDDEN = re.compile(r"[%/\\#?\x00-\x1f\x7f-\x9f]")
_ESCAPE = re.compile(r"%([0-9A-F]{2})")


def encode_key(text: str) -> str:
    escaped = _FORBIDDEN.sub(lambda m: f"%{ord(m.group()):02X}", text)
    if len(escaped) <= MAX_KEY_CHARS:
        return escaped
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return f"{escaped[: MAX_KEY_CHARS - 66]}~{digest}"


def decode_key(key: str) -> str:
    """Inverse of :func:`encode_key` for keys that were not shortened."""
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), key)
