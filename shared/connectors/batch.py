"""OData ``$batch`` bodies (multipart/mixed): build requests, parse responses.

Both services speak the same OData v4 multipart format, so one builder and one parser serve both.
A request is either independent (with ``Prefer: odata.continue-on-error`` each part succeeds or
fails alone) or grouped in change sets (atomic: all parts or none).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

CRLF = "\r\n"


@dataclass(frozen=True)
class Part:
    """One request inside a batch; ``url`` absolute or relative to the service root."""

    method: str
    url: str
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PartResponse:
    status: int
    headers: dict[str, str]
    body: Any

    @property
    def ok(self) -> bool:
        return self.status < 400


def _http_part(part: Part, content_id: int | None) -> str:
    lines = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if content_id is not None:
        lines.append(f"Content-ID: {content_id}")
    lines += ["", f"{part.method} {part.url} HTTP/1.1"]
    body = ""
    if part.body is not None:
        lines.append("Content-Type: application/json; type=entry")
        body = json.dumps(part.body, separators=(",", ":"), ensure_ascii=False)
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


def _headers(block: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in block.split("\n"):
        line = line.strip("\r")
        if ":" in line:
            k, v = line.split(":", 1)
            out[k.strip().lower()] = v.strip()
    return out


def _split_head(text: str) -> tuple[str, str]:
    for sep in ("\r\n\r\n", "\n\n"):
        i = text.find(sep)
        if i >= 0:
            return text[:i], text[i + len(sep):]
    return text, ""


def parse(content_type: str, body: bytes) -> list[PartResponse]:
    """Every inner response in order, change-set responses flattened in place."""
    text = body.decode("utf-8")
    delimiter = "--" + _boundary(content_type)
    out: list[PartResponse] = []
    for raw in text.split(delimiter)[1:]:
        if raw.startswith("--"):
            break
        mime_head, rest = _split_head(raw.lstrip("\r\n"))
        mime = _headers(mime_head)
        ctype = mime.get("content-type", "")
        if ctype.lower().startswith("multipart/mixed"):
            out.extend(parse(ctype, rest.encode("utf-8")))
            continue
        http_head, payload = _split_head(rest)
        status_line, _, header_block = http_head.partition("\n")
        status = int(status_line.split()[1])
        payload = payload.rstrip("\r\n")
        parsed: Any = None
        if payload.strip():
            try:
                parsed = json.loads(payload)
            except ValueError:
                parsed = payload
        out.append(PartResponse(status, _headers(header_block), parsed))
    return out
