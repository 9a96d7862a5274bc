"""OData ``$batch`` bodies (multipart/mixed): build requests, parse responses.

Both services speak the same OData v4 multipart format, so one builder and one parser serve both.
A request is either independent (with ``Prefer: odata.continue-on-error`` each part succeeds or
fails alone) or grouped in change sets (atomic: all parts or none).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.connectors import jsoncodec

CRLF = "\r\n"


@dataclass(frozen=True)
class Part:
    """One request inside a batch; ``url`` absolute or relative to the service root."""

    method: str
    url: str
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)


class PartResponse:
    """One inner response. Its headers and body are decoded on first use: a batch of writes reads
    the status of every part but the headers and body only of the few that failed, and decoding a
    created row's JSON echo (~1.4 KB each on Finance) was most of a batch response's parse cost."""

    __slots__ = ("_body", "_head", "_headers", "_payload", "status")
    _UNSET: Any = object()  # body not decoded yet (None is a decoded empty body)

    def __init__(self, status: int, headers: dict[str, str] | None = None, body: Any = _UNSET, *,
                 head: bytes = b"", payload: bytes = b"") -> None:
        self.status = status
        self._head, self._payload = head, payload
        self._headers = headers
        self._body = body

    @property
    def ok(self) -> bool:
        return self.status < 400

    @property
    def headers(self) -> dict[str, str]:
        """Header names lower-cased."""
        if self._headers is None:
            self._headers = _headers(self._head)
        return self._headers

    @property
    def body(self) -> Any:
        """The payload as JSON, as text when it isn't JSON, None when empty."""
        if self._body is PartResponse._UNSET:
            self._body = _decode(self._payload)
        return self._body

    def __repr__(self) -> str:
        return f"PartResponse(status={self.status})"  # never the body: it holds row contents


def _http_part(part: Part, content_id: int | None) -> str:
    lines = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if content_id is not None:
        lines.append(f"Content-ID: {content_id}")
    lines += ["", f"{part.method} {part.url} HTTP/1.1"]
    body = ""
    if part.body is not None:
        lines.append("Content-Type: application/json; type=entry")
        body = jsoncodec.dumps(part.body).decode()
    lines += [f"{k}: {v}" for k, v in part.headers.items()]
    lines += ["", body]
    return CRLF.join(lines)


def build(groups: Sequence[Sequence[Part]], *, atomic: bool) -> tuple[str, bytes]:
    """(content type, body) for a batch. ``atomic`` puts each group in its own change set;
    otherwise every part stands alone."""
    boundary = f"batch_{uuid.uuid4()}"
    chunks: list[str] = []
    content_id = 0
    for group in groups:
        if atomic:
            cs = f"changeset_{uuid.uuid4()}"
            inner = []
            for part in group:
                content_id += 1
                inner.append(f"--{cs}{CRLF}{_http_part(part, content_id)}")
            chunks.append(
                f"--{boundary}{CRLF}Content-Type: multipart/mixed; boundary={cs}{CRLF}{CRLF}"
                + CRLF.join(inner) + f"{CRLF}--{cs}--"
            )
        else:
            for part in group:
                chunks.append(f"--{boundary}{CRLF}{_http_part(part, None)}")
    body = CRLF.join(chunks) + f"{CRLF}--{boundary}--{CRLF}"
    return f"multipart/mixed; boundary={boundary}", body.encode("utf-8")


_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)


def _boundary(content_type: str) -> str:
    m = _BOUNDARY.search(content_type)
    if not m:
        raise ValueError("multipart response without a boundary")
    return m.group(1)


def _split_head(raw: bytes) -> tuple[bytes, bytes]:
    """(header block, rest) at the first blank line (CRLF or LF line ends)."""
    # Two C-speed finds instead of a regex search: this runs twice per part.
    crlf = raw.find(b"\r\n\r\n")
    lf = raw.find(b"\n\n", 0, crlf if crlf >= 0 else len(raw))  # an LF-only head ends first
    if lf >= 0:
        return raw[:lf], raw[lf + 2:]
    if crlf >= 0:
        return raw[:crlf], raw[crlf + 4:]
    return raw, b""


def _headers(block: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in block.decode("utf-8", "replace").splitlines():
        name, sep, value = line.partition(":")
        if sep:
            out[name.strip().lower()] = value.strip()
    return out


def _decode(payload: bytes) -> Any:
    if not payload.strip():
        return None
    try:
        return jsoncodec.loads(payload)
    except ValueError:
        return payload.decode("utf-8", "replace")


def _content_type(mime_head: bytes) -> str:
    for line in mime_head.split(b"\n"):
        name, sep, value = line.partition(b":")
        if sep and name.strip().lower() == b"content-type":
            return value.strip().decode("latin-1")
    return ""


def _parse_into(body: bytes, boundary: str, out: list[PartResponse]) -> None:
    # One pass over the bytes as received: split at the delimiter, decode nothing but the status
    # line (and a change set's boundary) until someone asks.
    for raw in body.split(b"--" + boundary.encode("latin-1"))[1:]:
        if raw.startswith(b"--"):
            return
        mime_head, rest = _split_head(raw.lstrip(b"\r\n"))
        if b"multipart/mixed" in mime_head.lower():  # a change set: its own boundary
            ctype = _content_type(mime_head)
            if ctype.lower().startswith("multipart/mixed"):
                _parse_into(rest, _boundary(ctype), out)
                continue
        http_head, payload = _split_head(rest)
        status_line, _, header_block = http_head.partition(b"\n")
        out.append(PartResponse(int(status_line.split()[1]), head=header_block, payload=payload.rstrip(b"\r\n")))


def parse(content_type: str, body: bytes) -> list[PartResponse]:
    """Every inner response in order, change-set responses flattened in place."""
    out: list[PartResponse] = []
    _parse_into(body, _boundary(content_type), out)
    return out
