from __future__ import annotations

import json

import pytest

from shared.state.scrub import MASK, is_secret_key, scrub


@pytest.mark.parametrize(
    "name",
    [
        "Authorization",
        "client_secret",
        "Client-Secret",
        "secret",
        "PASSWORD",
        "token",
        "access_token",
        "ConnectionString",
        "AzureWebJobsStorage_connection_string",
        "SharedAccessKey",
        "webhook_secret",
        "x-dualsync-key",
        "api_key",
    ],
)
def test_secret_names_are_masked(name: str) -> None:
    assert is_secret_key(name)
    assert scrub({name: "value-123"}) == {name: MASK}


@pytest.mark.parametrize(
    "name", ["name", "map", "key", "record_key", "msdyn_projectid", "$deltatoken", "skiptoken", "keys_count"]
)
def test_ordinary_names_are_kept(name: str) -> None:
    assert not is_secret_key(name)
    assert scrub({name: "value-123"}) == {name: "value-123"}


def test_inline_secrets_in_strings() -> None:
    conn = "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=Zm9v+YmFy/="
    storage = (
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=QUJD;EndpointSuffix=core.windows.net"
    )
    sas = "https://acct.blob.core.windows.net/c?sv=2022&sig=abc%2Bdef&se=2030"
    out = scrub({"notes": [conn, storage, sas, "Authorization: Bearer eyJ0eXAiOiJKV1Qi.x.y"]})
    joined = " ".join(out["notes"])
    for secret in ("Zm9v+YmFy", "QUJD", "abc%2Bdef", "eyJ0eXAiOiJKV1Qi"):
        assert secret not in joined
    assert "SharedAccessKeyName=RootManageSharedAccessKey" in joined
    assert "AccountName=acct" in joined


def test_scrub_copies_and_keeps_structure() -> None:
    original = {"a": [{"password": "p", "n": 1}, ("x", None)], "b": True, "token": None}
    out = scrub(original)
    assert out == {"a": [{"password": MASK, "n": 1}, ["x", None]], "b": True, "token": None}
    assert original["a"][0]["password"] == "p"  # type: ignore[index]


def test_key_value_pairs_keep_their_names_and_mask_secret_values() -> None:
    # Dataverse's RemoteExecutionContext serialises collections as [{"key": name, "value": v}]: the
    # "key" member is a name, not a secret; the value is masked when the name is a secret's.
    context = {"InputParameters": [{"key": "Target", "value": {"Attributes": [
        {"key": "msdyn_subject", "value": "Office move"}, {"key": "client_secret", "value": "hunter2"}]}}],
        "SharedVariables": [{"key": "tag", "value": "dualsync"}, {"key": "ChangedEntityTypes", "value": [
            {"__type": "KeyValuePairOfstringstring:#System.Collections.Generic", "key": "msdyn_project",
             "value": "Update"}]}]}
    out = scrub(context)
    assert out["InputParameters"][0]["key"] == "Target"
    attributes = out["InputParameters"][0]["value"]["Attributes"]
    assert attributes == [{"key": "msdyn_subject", "value": "Office move"}, {"key": "client_secret", "value": MASK}]
    assert out["SharedVariables"] == context["SharedVariables"]
    assert scrub({"key": "P-1"}) == {"key": "P-1"}  # a lone "key" is a record key (notifications), kept


def test_a_kept_notification_stays_replayable() -> None:
    # the error store keeps the scrubbed notification; replay parses it back
    from datetime import UTC, datetime

    from shared.catalog.models import Side
    from shared.events.notification import ChangeNotification, Operation, Origin

    note = ChangeNotification(map="expenses", source=Side.FINANCE, record_id=None, key='["USPM","EXP-1"]',
                              operation=Operation.UPDATE, time=datetime(2026, 1, 1, tzinfo=UTC),
                              origin=Origin.WEBHOOK)
    kept = scrub(json.loads(note.to_message().body))
    assert ChangeNotification.from_message(json.dumps(kept).encode()) == note
