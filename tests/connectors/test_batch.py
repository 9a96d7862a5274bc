"""The ``$batch`` response parser: statuses eagerly, headers and bodies when asked, change sets flattened."""

from __future__ import annotations

import json

from shared.connectors import batch


def _response(parts: list[str], boundary: str = "batchresponse_x", eol: str = "\r\n") -> bytes:
    text = "".join(f"--{boundary}{eol}{p}{eol}" for p in parts) + f"--{boundary}--{eol}"
    return text.encode("utf-8")


def _http(status: str, headers: dict[str, str], body: str = "", eol: str = "\r\n") -> str:
    head = eol.join(f"{k}: {v}" for k, v in headers.items())
    return (f"Content-Type: application/http{eol}Content-Transfer-Encoding: binary{eol}{eol}"
            f"HTTP/1.1 {status}{eol}{head}{eol}{eol}{body}")


def test_created_echo_and_error_part():
    created = {"dataAreaId": "usmf", "ActualId": "ACT-1", "Description": "Zeitbuchung für Jürgen"}
    error = {"error": {"code": "", "message": "Write failed", "innererror": {"message": "dup"}}}
    body = _response([
        _http("201 Created", {"Content-Type": "application/json", "Location": "x(1)"}, json.dumps(created)),
        _http("400 Bad Request", {"Content-Type": "application/json"}, json.dumps(error)),
        _http("204 No Content", {"OData-EntityId": "x(2)"}),
    ])
    parts = batch.parse("multipart/mixed; boundary=batchresponse_x", body)
    assert [(p.status, p.ok) for p in parts] == [(201, True), (400, False), (204, True)]
    assert parts[0].body == created
    assert parts[0].headers["location"] == "x(1)"
    assert parts[1].body["error"]["innererror"]["message"] == "dup"
    assert parts[2].body is None and parts[2].headers == {"odata-entityid": "x(2)"}


def test_lf_line_ends_quoted_boundary_and_text_body():
    body = _response([_http("429 Too Many Requests", {"Retry-After": "3"}, "slow down", eol="\n")], eol="\n")
    parts = batch.parse('multipart/mixed; boundary="batchresponse_x"', body)
    assert len(parts) == 1
    assert parts[0].status == 429 and parts[0].headers["retry-after"] == "3"
    assert parts[0].body == "slow down"


def test_change_sets_are_flattened_in_order():
    cs = ("Content-Type: multipart/mixed; boundary=changesetresponse_y\r\n\r\n"
          + "".join(f"--changesetresponse_y\r\n{_http(s, {'Content-ID': str(i)})}\r\n"
                    for i, s in enumerate(("204 No Content", "201 Created"), 1))
          + "--changesetresponse_y--")
    body = _response([cs, _http("404 Not Found", {"Content-Type": "application/json"}, '{"error":{}}')])
    parts = batch.parse("multipart/mixed; boundary=batchresponse_x", body)
    assert [p.status for p in parts] == [204, 201, 404]
    assert [p.headers.get("content-id") for p in parts] == ["1", "2", None]


def test_body_with_blank_lines_and_boundary_like_text_survives():
    # A payload may hold blank lines; only the first blank line ends a part's head.
    text = '{"Description": "line one\\n\\nline --batchresponse three"}'
    parts = batch.parse("multipart/mixed; boundary=batchresponse_x", _response([_http("200 OK", {}, text)]))
    assert parts[0].body == json.loads(text)


def test_repr_carries_no_row_contents():
    body = _response([_http("201 Created", {}, json.dumps({"Name": "secret-row-value"}))])
    part = batch.parse("multipart/mixed; boundary=batchresponse_x", body)[0]
    assert "secret-row-value" not in repr(part)


def test_part_responses_built_directly_keep_their_values():
    part = batch.PartResponse(412, {"etag": "W/1"}, {"error": {"code": "0x80060882"}})
    assert not part.ok and part.headers["etag"] == "W/1" and part.body["error"]["code"] == "0x80060882"
    assert batch.PartResponse(204).body is None and batch.PartResponse(204).headers == {}
