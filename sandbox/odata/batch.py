"""OData ``$batch`` in multipart/mixed form: parse a request body, write a response body.

A batch holds parts; each part is one HTTP request (``Content-Type: application/http``) or a change
set (a nested ``multipart/mixed``) of requests. Line ends may be CRLF or LF.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import urlsplit

from sandbox.odata.literals import ODataSyntaxError

_BOUNDARY = re.compile(r'boundary\s*=\s*"?([^";]+)"?', re.IGNORECASE)
_REQUEST_LINE = re.compile(r"^([A-Z]+)\s+(\S+)(?:\s+HTTP/\d\.\d)?$")


@dataclass
class BatchRequest:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""
    content_id: str | None = None


@dataclass
class ChangeSet:
    requests: list[BatchRequest]


BatchPart = BatchRequest | ChangeSet


@dataclass
class BatchResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    content_id: str | None = None


def split_part_url(url: str) -> tuple[str, str]:
    """A batch part's URL as (path, query). The usual part URL (absolute path or full URL, no query,
    nothing ``urlsplit`` would clean) is cut by hand: ``urlsplit`` was a visible share of a batched row."""
    if "?" not in url and "#" not in url and url.isprintable() and " " not in url and \
            ((url[:1] == "/" and url[:2] != "//") or url.startswith(("http://", "https://"))):
        slash = url.find("/", url.find("://") + 3) if url[0] != "/" else 0
        return ("" if slash < 0 else url[slash:]), ""
    parts = urlsplit(url)
    return parts.path, parts.query


def boundary_of(content_type: str) -> str:
    if not content_type.lower().startswith("multipart/mixed"):
        raise ODataSyntaxError(f"The content type '{content_type}' is not multipart/mixed.")
    m = _BOUNDARY.search(content_type)
    if m is None:
        raise ODataSyntaxError("The multipart/mixed content type has no boundary.")
    return m.group(1).strip()


def _split(body: bytes, boundary: str) -> list[bytes]:
    delim = b"--" + boundary.encode()
    pieces = body.split(delim)
    if len(pieces) < 2:
        raise ODataSyntaxError(f"The batch body does not contain the boundary '{boundary}'.")
    parts = []
    for piece in pieces[1:]:
        if piece.startswith(b"--"):
            return parts
        piece = piece[2:] if piece.startswith(b"\r\n") else piece[1:] if piece.startswith(b"\n") else piece
        if piece.endswith(b"\r\n"):
            piece = piece[:-2]
        elif piece.endswith(b"\n"):
            piece = piece[:-1]
        parts.append(piece)
    raise ODataSyntaxError(f"The batch body is missing the closing boundary '--{boundary}--'.")


_BLANK_LINE = re.compile(rb"\r?\n\r?\n")


def _split_head(raw: bytes) -> tuple[bytes, bytes]:
    """(head, body) at the first blank line, exactly where ``_BLANK_LINE`` would split (CRLF or LF
    in any mix), with C-speed finds: a blank line is a LF, an optional CR, a LF, plus the CR before."""
    lf_cr_lf = raw.find(b"\n\r\n")
    lf_lf = raw.find(b"\n\n", 0, lf_cr_lf + 1 if lf_cr_lf >= 0 else len(raw))
    if lf_lf >= 0:
        at, end = lf_lf, lf_lf + 2
    elif lf_cr_lf >= 0:
        at, end = lf_cr_lf, lf_cr_lf + 3
    else:
        return raw, b""
    if at > 0 and raw[at - 1] == 13:  # the CR of a CRLF
        at -= 1
    return raw[:at], raw[end:]


def _head_body(raw: bytes) -> tuple[dict[str, str], list[str], bytes]:
    """Split header lines from the body; returns (headers, first-lines-without-colon, body)."""
    head, body = _split_head(raw)
    headers: dict[str, str] = {}
    other: list[str] = []
    for line in head.decode("utf-8", "replace").splitlines():
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        # a request line can only match when whitespace precedes the first colon ("GET http://...")
        if sep and (len(name.split()) < 2 or not _REQUEST_LINE.match(line.strip())):
            headers[name.strip().lower()] = value.strip()
        else:
            other.append(line.strip())
    return headers, other, body


def _parse_http(raw: bytes, content_id: str | None) -> BatchRequest:
    head, body = _split_head(raw)
    lines = [ln for ln in head.decode("utf-8", "replace").splitlines()]
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines:
        raise ODataSyntaxError("A batch part has no request line.")
    rl = _REQUEST_LINE.match(lines[0].strip())
    if rl is None:
        raise ODataSyntaxError(f"The batch request line '{lines[0].strip()}' is not valid.")
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise ODataSyntaxError(f"The batch request header line '{line}' is not valid.")
        headers[name.strip().lower()] = value.strip()
    body = body.rstrip(b"\r\n")
    return BatchRequest(rl.group(1), rl.group(2), headers, body, content_id)


def parse_batch(body: bytes, content_type: str) -> list[BatchPart]:
    parts: list[BatchPart] = []
    for raw in _split(body, boundary_of(content_type)):
        headers, _, inner = _head_body(raw)
        ctype = headers.get("content-type", "")
        if ctype.lower().startswith("multipart/mixed"):
            requests = []
            for sub in _split(inner, boundary_of(ctype)):
                sh, _, sinner = _head_body(sub)
                requests.append(_parse_http(sinner, sh.get("content-id")))
            parts.append(ChangeSet(requests))
        elif ctype.lower().startswith("application/http"):
            parts.append(_parse_http(inner, headers.get("content-id")))
        else:
            raise ODataSyntaxError(f"A batch part has the unsupported content type '{ctype}'.")
    return parts


_REASONS = {s.value: s.phrase for s in HTTPStatus}  # an enum lookup per part cost more than the part's headers


def _write_response(r: BatchResponse) -> bytes:
    out = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if r.content_id is not None:
        out.append(f"Content-ID: {r.content_id}")
    reason = _REASONS.get(r.status, "")
    out += ["", f"HTTP/1.1 {r.status} {reason}"]
    out += [f"{k}: {v}" for k, v in r.headers.items()]
    out.append("")
    return ("\r\n".join(out) + "\r\n").encode() + r.body


def write_batch_response(items: list[BatchResponse | list[BatchResponse]]) -> tuple[bytes, str]:
    """Multipart body with ``batchresponse_<guid>`` and ``changesetresponse_<guid>`` boundaries."""
    boundary = f"batchresponse_{uuid.uuid4()}"
    chunks: list[bytes] = []
    for item in items:
        chunks.append(f"--{boundary}\r\n".encode())
        if isinstance(item, list):
            cs = f"changesetresponse_{uuid.uuid4()}"
            chunks.append(f"Content-Type: multipart/mixed; boundary={cs}\r\n\r\n".encode())
            for r in item:
                chunks.append(f"--{cs}\r\n".encode() + _write_response(r) + b"\r\n")
            chunks.append(f"--{cs}--\r\n".encode())
        else:
            chunks.append(_write_response(item) + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/mixed; boundary={boundary}"


def count_requests(parts: list[BatchPart]) -> int:
    return sum(len(p.requests) if isinstance(p, ChangeSet) else 1 for p in parts)


# --- client side: used by tests and benchmarks (and usable by connectors) ------------------------

def _write_request(r: BatchRequest) -> bytes:
    out = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if r.content_id is not None:
        out.append(f"Content-ID: {r.content_id}")
    out += ["", f"{r.method} {r.url} HTTP/1.1"]
    out += [f"{k}: {v}" for k, v in r.headers.items()]
    out.append("")
    return ("\r\n".join(out) + "\r\n").encode() + r.body


def write_batch_request(parts: list[BatchPart]) -> tuple[bytes, str]:
    """Multipart request body for ``parts``; returns (body, content type)."""
    boundary = f"batch_{uuid.uuid4()}"
    chunks: list[bytes] = []
    for part in parts:
        chunks.append(f"--{boundary}\r\n".encode())
        if isinstance(part, ChangeSet):
            cs = f"changeset_{uuid.uuid4()}"
            chunks.append(f"Content-Type: multipart/mixed; boundary={cs}\r\n\r\n".encode())
            for r in part.requests:
                chunks.append(f"--{cs}\r\n".encode() + _write_request(r) + b"\r\n")
            chunks.append(f"--{cs}--\r\n".encode())
        else:
            chunks.append(_write_request(part) + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/mixed; boundary={boundary}"


def _parse_http_response(raw: bytes, content_id: str | None) -> BatchResponse:
    m = re.search(rb"\r?\n\r?\n", raw)
    head, body = (raw[: m.start()], raw[m.end():]) if m else (raw, b"")
    lines = [ln for ln in head.decode("utf-8", "replace").splitlines() if ln.strip()]
    if not lines or not lines[0].startswith("HTTP/"):
        raise ODataSyntaxError("A batch response part has no status line.")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return BatchResponse(status, headers, body.rstrip(b"\r\n"), content_id)


def parse_batch_response(body: bytes, content_type: str) -> list[BatchResponse | list[BatchResponse]]:
    items: list[BatchResponse | list[BatchResponse]] = []
    for raw in _split(body, boundary_of(content_type)):
        headers, _, inner = _head_body(raw)
        ctype = headers.get("content-type", "")
        if ctype.lower().startswith("multipart/mixed"):
            items.append([_parse_http_response(_head_body(sub)[2], _head_body(sub)[0].get("content-id"))
                          for sub in _split(inner, boundary_of(ctype))])
        else:
            items.append(_parse_http_response(inner, headers.get("content-id")))
    return items
