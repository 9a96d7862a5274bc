"""The Bicep templates, checked by structure (no Bicep compiler is reachable here; see docs/deploy.md).

What is checked: every file's brackets balance; module references and their parameters line up; the
parameter file documents real parameters and carries no secret; the Function App is Flex Consumption
on Python 3.11 with identity-based storage; Service Bus entities come from topology.json; every app
setting the engine reads is set (or deliberately left out), secret ones only as Key Vault references;
the managed identity gets the built-in roles it needs, by their well-known ids.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from functions.sync import CONNECTION
from shared.settings import PREFIX, Settings

INFRA = Path(__file__).resolve().parents[2] / "infra"
MAIN = INFRA / "main.bicep"

# Built-in role definition ids (learn.microsoft.com/azure/role-based-access-control/built-in-roles).
ROLE_IDS = {
    "serviceBusDataOwner": "090c5cfd-751d-490a-894a-3ce6f1109419",
    "storageBlobDataOwner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "storageQueueDataContributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "storageTableDataContributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "keyVaultSecretsUser": "4633458b-17de-408a-b874-0445c86b69e6",
    "keyVaultSecretsOfficer": "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
}
# Settings the template leaves out on purpose (each named, with its reason, in main.bicep).
NOT_IN_AZURE = {"static_token", "state_sqlite_path", "broker_path", "client_certificate_path", "maps_dir",
                "state_table_connection", "servicebus_connection", "client_secret", "webhook_secret"}
SECRET_SETTINGS = {n for n, f in Settings.model_fields.items() if "SecretStr" in repr(f.annotation)}


def code(path: Path) -> str:
    """The file without comments and with string contents blanked (brackets inside strings ignored)."""
    text, out, i = path.read_text(encoding="utf-8"), [], 0
    while i < len(text):
        if text.startswith("//", i):
            i = text.find("\n", i) if "\n" in text[i:] else len(text)
        elif text[i] == "'":
            i += 1
            while text[i] != "'":
                i += 2 if text[i] == "\\" else 1
            out.append("''")
            i += 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def params(path: Path) -> dict[str, tuple[str, str | None]]:
    """name -> (type, default text or None)."""
    return {m[1]: (m[2], m[3]) for m in
            re.finditer(r"^param (\w+) (\w+)(?: = (.+))?$", path.read_text(encoding="utf-8"), re.M)}


def block(text: str, start: int) -> str:
    """The {...} block opening at or after ``start``."""
    open_at = text.index("{", start)
    depth = 0
    for i in range(open_at, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[open_at:i + 1]
    raise AssertionError("unbalanced block")


def resources(text: str, type_prefix: str) -> dict[str, str]:
    return {m[1]: block(text, m.end()) for m in
            re.finditer(rf"^resource (\w+) '{re.escape(type_prefix)}@[^']+'", text, re.M)}


@pytest.fixture(scope="module")
def main() -> str:
    return MAIN.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def app_settings(main) -> dict[str, str]:
    """Setting name -> value expression, from the appsettings resource and the variables it unions."""
    props = block(main, main.index("properties: union(entitySettings, secretSettings,"))
    out = {m[1]: m[2].strip() for m in re.finditer(r"^\s+(\w+): (.+)$", props, re.M)}
    secrets = main[main.index("var secretSettings"):main.index("var entitySettings")]
    out |= {m[1]: m[2] for m in re.finditer(r"\{ (DUALSYNC_\w+): ('[^']*') \}", secrets)}
    topology = json.loads((INFRA / "topology.json").read_text(encoding="utf-8"))
    assert "toObject(concat([topology.topic], topology.queues), e => e.setting, e => e.name)" in main
    out |= {e["setting"]: repr(e["name"]) for e in [topology["topic"], *topology["queues"]]}
    return out


@pytest.mark.parametrize("path", sorted(INFRA.rglob("*.bicep")), ids=lambda p: p.name)
def test_brackets_balance(path):
    text = code(path)
    for opening, closing in ("{}", "[]", "()"):
        depth = 0
        for ch in text:
            depth += (ch == opening) - (ch == closing)
            assert depth >= 0, (path.name, closing)
        assert depth == 0, (path.name, opening)


def test_modules_exist_and_get_their_required_parameters(main):
    for m in re.finditer(r"^module (\w+) '([^']+)' = ", main, re.M):
        target = INFRA / m[2]
        assert target.is_file(), m[2]
        declared = params(target)
        passed = set(re.findall(r"^\s{4}(\w+):", block(main, main.index("params:", m.end())), re.M))
        assert passed <= set(declared), (m[2], passed - set(declared))
        required = {n for n, (_, default) in declared.items() if default is None}
        assert required <= passed, (m[2], required - passed)


def test_parameter_file_documents_real_parameters_without_secrets(main):
    declared = params(MAIN)
    example = json.loads((INFRA / "main.parameters.example.json").read_text(encoding="utf-8"))["parameters"]
    assert set(example) <= set(declared), set(example) - set(declared)
    assert {n for n, (_, d) in declared.items() if d is None} <= set(example)  # every required one shown
    kinds = {"string": str, "int": int, "bool": bool, "object": dict, "array": list}
    for name, entry in example.items():
        assert isinstance(entry["value"], kinds[declared[name][0]]), name
        assert not re.search(r"secret|password|token|key", name, re.I) or name.endswith(("Enabled", "PrincipalId"))
    assert "@secure()" not in main  # nothing secret is a parameter: secrets go to Key Vault directly


def test_no_literal_secret_anywhere_in_infra():
    patterns = [r"AccountKey=", r"SharedAccessKey=", r"InstrumentationKey=", r"client_secret\s*[:=]\s*'[^']",
                r"[A-Za-z0-9+/]{38,}={1,2}", r"-----BEGIN"]
    for path in sorted(INFRA.rglob("*")):
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            for p in patterns:
                assert not re.search(p, text), (path.name, p)


def test_engine_tuning_defaults_are_the_settings_defaults():
    declared = params(MAIN)
    tuned = {"httpTimeoutSeconds": "http_timeout_seconds", "retryBudgetSeconds": "retry_budget_seconds",
             "maxConcurrency": "max_concurrency", "batchSize": "batch_size",
             "dataverseBulkWrite": "dataverse_bulk_write", "maxBodyBytes": "max_body_bytes",
             "pullSchedule": "pull_schedule", "pageSize": "page_size",
             "initialSyncConcurrency": "initial_sync_concurrency", "initialSyncRangeRows": "initial_sync_range_rows",
             "stateTablePrefix": "state_table_prefix",
             "financeDefaultCompany": "finance_default_company"}
    for param, setting in tuned.items():
        default = declared[param][1]
        assert default is not None
        value = json.loads(default.replace("'", '"')) if default.startswith("'") else int(default)
        assert value == Settings.model_fields[setting].default, param


def test_every_setting_is_set_or_deliberately_left_out(main, app_settings):
    for name in Settings.model_fields:
        env = f"{PREFIX}{name.upper()}"
        if name in SECRET_SETTINGS:
            continue  # see test_secret_settings_are_key_vault_references_only
        if name in NOT_IN_AZURE:
            assert env not in app_settings, env
            assert env in main, f"{env}: say in main.bicep why it is not set"
        else:
            assert env in app_settings, env
    assert app_settings["DUALSYNC_STATE_BACKEND"] == "'table'"
    assert app_settings["DUALSYNC_TRANSPORT"] == "'servicebus'"
    assert app_settings["DUALSYNC_AUTH_MODE"] == "authMode" and params(MAIN)["authMode"][1] == "'managed_identity'"
    assert "DUALSYNC_STATE_TABLE_ENDPOINT" in app_settings and "DUALSYNC_SERVICEBUS_NAMESPACE" in app_settings
    assert app_settings[f"{CONNECTION}__fullyQualifiedNamespace"] == "serviceBus.outputs.fullyQualifiedNamespace"
    assert app_settings["AzureWebJobsStorage__accountName"] == "storage.name"
    assert "APPLICATIONINSIGHTS_CONNECTION_STRING" in app_settings
    assert not {"FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION"} & set(app_settings)  # Flex refuses them


def test_secret_settings_are_key_vault_references_only(main, app_settings):
    assert {"client_secret", "static_token", "state_table_connection",
                               "servicebus_connection", "webhook_secret"} == SECRET_SETTINGS
    for name in SECRET_SETTINGS:
        value = app_settings.get(f"{PREFIX}{name.upper()}")
        if value is not None:
            assert value.startswith("'${secretReference}"), (name, value)
    assert "var secretReference = '@Microsoft.KeyVault(SecretUri=${vault.properties.vaultUri}secrets/'" in main
    assert {"DUALSYNC_CLIENT_SECRET", "DUALSYNC_WEBHOOK_SECRET"} <= set(app_settings)


def test_function_app_is_flex_consumption_python_with_identity_storage(main):
    plan = resources(main, "Microsoft.Web/serverfarms")["plan"]
    assert "tier: 'FlexConsumption'" in plan and "name: 'FC1'" in plan
    app = resources(main, "Microsoft.Web/sites")["functionApp"]
    assert "type: 'SystemAssigned'" in app
    config = block(app, app.index("functionAppConfig"))
    assert "type: 'blobContainer'" in config and "type: 'SystemAssignedIdentity'" in config
    assert "instanceMemoryMB: instanceMemoryMB" in config and "maximumInstanceCount: maximumInstanceCount" in config
    assert "name: 'python'" in config and "version: pythonVersion" in config
    assert params(MAIN)["pythonVersion"] == ("string", "'3.11'")
    storage = resources(main, "Microsoft.Storage/storageAccounts")["storage"]
    assert "allowSharedKeyAccess: false" in storage
    vault = resources(main, "Microsoft.KeyVault/vaults")["vault"]
    assert "enableRbacAuthorization: true" in vault
    assert params(MAIN)["serviceBusSku"] == ("string", "'Standard'")


def test_service_bus_entities_come_from_topology_json(main):
    assert "var topology = loadJsonContent('topology.json')" in main
    sb = (INFRA / "modules" / "servicebus.bicep").read_text(encoding="utf-8")
    subs = resources(sb, "Microsoft.ServiceBus/namespaces/topics/subscriptions")
    assert "for s in topology.subscriptions" in sb and "properties: s.properties" in subs["subscriptions"]
    rules = resources(sb, "Microsoft.ServiceBus/namespaces/topics/subscriptions/rules")["rules"]
    assert "parent: subscriptions[i]" in rules and "name: s.rule.name" in rules
    assert "filterType: 'SqlFilter'" in rules and "sqlExpression: s.rule.sqlExpression" in rules
    queues = resources(sb, "Microsoft.ServiceBus/namespaces/queues")["queues"]
    assert "for q in topology.queues" in sb and "properties: q.properties" in queues
    # SAS for the senders that cannot use Entra ID: send-only, ingress queues and one namespace rule
    sends = resources(sb, "Microsoft.ServiceBus/namespaces/queues/authorizationRules")["ingressSendRules"]
    assert "startsWith(q.setting, 'DUALSYNC_INGRESS_QUEUE_')" in sb and "parent: queues[i]" in sends
    namespace_rules = resources(sb, "Microsoft.ServiceBus/namespaces/authorizationRules")
    for rule in [sends, *namespace_rules.values()]:
        assert re.sub(r"\s+", " ", block(rule, rule.index("properties:"))) == "{ rights: [ 'Send' ] }"
    topic = resources(sb, "Microsoft.ServiceBus/namespaces/topics")["topic"]
    assert "name: topology.topic.name" in topic and "properties: topology.topic.properties" in topic


def test_managed_identity_gets_the_built_in_roles_it_needs(main):
    roles = dict(re.findall(r"^\s+(\w+): '([0-9a-f-]{36})'", block(main, main.index("var roles =")), re.M))
    assert roles == ROLE_IDS
    assigned = {}
    for name, body in resources(main, "Microsoft.Authorization/roleAssignments").items():
        role = re.search(r"roles\.(\w+)\)", body)
        scope = re.search(r"scope: (\w+)", body)
        assert role and scope, name
        assert f"guid({scope[1]}.id," in body  # stable, unique assignment name per scope
        principal = re.search(r"principalId: ([\w.]+)", body)[1]
        assigned[(role[1], scope[1])] = principal
    app = "functionApp.identity.principalId"
    assert assigned[("serviceBusDataOwner", "serviceBusNamespace")] == app
    assert assigned[("storageBlobDataOwner", "storage")] == app
    assert assigned[("storageQueueDataContributor", "storage")] == app
    assert assigned[("storageTableDataContributor", "storage")] == app
    assert assigned[("keyVaultSecretsUser", "vault")] == app
    assert assigned[("keyVaultSecretsOfficer", "vault")] == "secretsOfficerPrincipalId"
