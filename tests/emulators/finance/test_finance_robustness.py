"""No request crashes the server or yields a 500: random paths, query options and bodies."""

from __future__ import annotations

from urllib.parse import quote

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.finance import FinanceEmulator
from sandbox.httpserver import RunningServer

SETS = ["ProjCDSProjects", "Currencies", "ProjCDSActualsImports", "Nope", "$batch", "$metadata"]
text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | text,
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(text, c, max_size=3), max_leaves=8)
fields = st.sampled_from(["ProjectID", "ProjectName", "ProjectType", "StartDate", "dataAreaId", "Amount",
                          "CurrencyCode", "Name", "Nope"])


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=st.sampled_from(["GET", "POST", "PATCH", "DELETE", "PUT"]), entity=st.sampled_from(SETS),
       key=st.one_of(st.none(), text, st.just("dataAreaId='usmf',ProjectID='P-1'")),
       params=st.dictionaries(st.sampled_from(["$filter", "$select", "$orderby", "$top", "$skip", "$count",
                                               "cross-company", "$expand"]), text, max_size=3),
       body=st.one_of(st.dictionaries(fields, json_values, max_size=4), json_values, st.binary(max_size=40)))
def test_random_requests_never_500(server: RunningServer, emulator: FinanceEmulator, method: str, entity: str,
                                   key: str | None, params: dict[str, str], body: object) -> None:
    segment = "(" + quote(key, safe="'=,") + ")" if key is not None else ""
    path = f"/data/{entity}{segment}"
    content = body if isinstance(body, bytes) else httpx.Request("POST", "http://x", json=body).content
    with httpx.Client(base_url=server.url, headers={"Authorization": "Bearer test-token"}) as c:
        r = c.request(method, path, params=params, content=content,
                      headers={"Content-Type": "application/json"})
        assert r.status_code < 500, (method, path, params, body, r.text)
        if r.status_code >= 400:
            assert "error" in r.json() or "Message" in r.json()
        assert c.get("/data/Currencies").status_code == 200  # still serving


def _parsed_or_refused(svc, ent, body):  # type: ignore[no-untyped-def]
    from sandbox.finance.errors import BadRequest
    from sandbox.finance.service import ODataRequest

    try:
        return svc._body(ent, ODataRequest("POST", ent.entity_set, {}, {}, httpx.Request(
            "POST", "http://x", json=body).content))
    except BadRequest as exc:
        return ("refused", exc.body())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_body_fast_path_gives_parse_body_value_answers(emulator: FinanceEmulator, data: st.DataObject) -> None:
    # _body skips parse_body_value for plain text and floats (it runs for every field written); the
    # answers, refusals included, must be the same as going through it for every value.
    from sandbox.finance.errors import BadRequest
    from sandbox.finance.schema import BodyValueError, parse_body_value

    svc = emulator.service
    ent = svc.schema.entity("ProjCDSActualsImports")
    assert ent is not None
    names = [n for n, f in ent.fields.items() if not f.system]
    chosen = data.draw(st.lists(st.sampled_from(names), unique=True, max_size=6))
    body = {}
    for name in chosen:
        length = ent.fields[name].length
        at_the_edge = (st.integers(max(0, length - 1), length + 1).map(lambda n: "ü" * n)
                       if length is not None else st.nothing())
        body[name] = data.draw(st.none() | st.booleans() | st.integers() | text | at_the_edge
                               | st.floats(allow_nan=False, allow_infinity=False), label=name)
    expected: object = {}
    try:
        expected = {k: parse_body_value(svc.schema, ent.fields[k], v) for k, v in body.items()}
    except BodyValueError as exc:
        expected = ("refused", BadRequest(str(exc)).body())
    assert _parsed_or_refused(svc, ent, body) == expected
