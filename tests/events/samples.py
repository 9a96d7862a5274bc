"""Request bodies in their real wire form, and the fixture catalog.

The Dataverse context follows the documented webhook sample (apis.md §1.3: PA use-webhooks.md),
adapted to ``msdyn_project``: key/value arrays, ``__type`` markers, ``\\/Date(...)\\/`` text with the
JSON-escaped slashes DataContractJsonSerializer writes. It is kept as text on purpose, so the
tests read what Dataverse sends, not what ``json.dumps`` would write.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from shared.catalog import Catalog, load_catalog
from shared.mapping.compiler import CompiledMap, compile_catalog

FIXTURES = Path(__file__).resolve().parents[1] / "catalog" / "fixtures" / "good"

PROJECT_ID = "6d81597f-0f9f-e711-8122-000d3a2ba2ea"
CORRELATION_ID = "b374239d-4233-41a9-8b17-a2cb4dbf3f45"
OPERATION_ID = "4af10637-1d9f-4b8f-9a5e-2c9a6f4f0e11"
USER_ID = "75c2dd85-e89e-e711-8122-000d3a2ba2ea"
COMPANY_ID = "1a2b3c4d-0000-4000-8000-00000000c0de"
SECRET = "s3cret-header-value"

JSON_HEADERS = {"Content-Type": "application/json"}

_TARGET_UPDATE = r"""{
      "__type": "Entity:http:\/\/schemas.microsoft.com\/xrm\/2011\/Contracts",
      "Attributes": [
        {"key": "msdyn_subject", "value": "Alpine ski house rollout"},
        {"key": "msdyn_projectid", "value": "%(id)s"},
        {"key": "modifiedon", "value": "\/Date(1506384247000)\/"},
        {"key": "modifiedby", "value": {
          "__type": "EntityReference:http:\/\/schemas.microsoft.com\/xrm\/2011\/Contracts",
          "Id": "%(user)s", "KeyAttributes": [], "LogicalName": "systemuser", "Name": null, "RowVersion": null}},
        {"key": "statecode", "value": {"__type": "OptionSetValue:http:\/\/schemas.microsoft.com\/xrm\/2011\/Contracts", "Value": 0}},
        {"key": "msdyn_totalactualcost", "value": {"__type": "Money:http:\/\/schemas.microsoft.com\/xrm\/2011\/Contracts", "Value": 1250.5}},
        {"key": "versionnumber", "value": %(version)s},
        {"key": "modifiedonbehalfby", "value": null}
      ],
      "EntityState": null, "FormattedValues": [], "Id": "%(id)s",
      "KeyAttributes": [], "LogicalName": "msdyn_project", "RelatedEntities": [], "RowVersion": null
    }"""

_POST_IMAGE = r"""{
      "Attributes": [
        {"key": "msdyn_projectid", "value": "%(id)s"},
        {"key": "msdyn_projectnumber", "value": "P-1001"},
        {"key": "msdyn_company", "value": {
          "__type": "EntityReference:http:\/\/schemas.microsoft.com\/xrm\/2011\/Contracts",
          "Id": "%(company)s", "KeyAttributes": [], "LogicalName": "cdm_company", "Name": "USMF", "RowVersion": null}},
        {"key": "msdyn_scheduledstart", "value": "\/Date(1506384000000)\/"},
        {"key": "versionnumber", "value": %(version)s}
      ],
      "EntityState": null, "FormattedValues": [], "Id": "%(id)s", "KeyAttributes": [],
      "LogicalName": "msdyn_project", "RelatedEntities": [], "RowVersion": "%(version)s"
    }"""

_DELETE_TARGET = r"""{
      "__type": "EntityReference:http:\/\/schemas.microsoft.com\/xrm\/2011\/Contracts",
      "Id": "%(id)s", "KeyAttributes": [], "LogicalName": "msdyn_project", "Name": null, "RowVersion": null
    }"""

_CONTEXT = r"""{
  "BusinessUnitId": "e2b9dd85-e89e-e711-8122-000d3a2ba2ea",
  "CorrelationId": "%(correlation)s",
  "Depth": 1,
  "InitiatingUserId": "%(user)s",
  "InputParameters": [{"key": "Target", "value": %(target)s}],
  "IsExecutingOffline": false, "IsInTransaction": false, "IsOfflinePlayback": false,
  "IsolationMode": 1,
  "MessageName": "%(message)s",
  "Mode": 1,
  "OperationCreatedOn": "\/Date(1506409448000-0700)\/",
  "OperationId": "%(operation)s",
  "OrganizationId": "4ef5b371-b9c2-4a52-a2b1-3d5bb8d2f0a4",
  "OrganizationName": "OrgName",
  "OutputParameters": %(outputs)s,
  "OwningExtension": {"Id": "75417616-4f9f-e711-8122-000d3a2ba2ea", "KeyAttributes": [],
                      "LogicalName": "sdkmessageprocessingstep", "Name": null, "RowVersion": null},
  "ParentContext": {
    "BusinessUnitId": "e2b9dd85-e89e-e711-8122-000d3a2ba2ea", "CorrelationId": "%(correlation)s", "Depth": 1,
    "InitiatingUserId": "%(user)s",
    "InputParameters": [{"key": "Target", "value": %(target)s},
                        {"key": "SuppressDuplicateDetection", "value": false}],
    "MessageName": "%(message)s", "Mode": 0, "OperationId": "%(operation)s",
    "OutputParameters": [], "ParentContext": null, "PostEntityImages": [], "PreEntityImages": [],
    "PrimaryEntityId": "%(id)s", "PrimaryEntityName": "msdyn_project", "RequestId": null,
    "SecondaryEntityName": "none",
    "SharedVariables": [{"key": "ChangedEntityTypes", "value": [
      {"__type": "KeyValuePairOfstringstring:#System.Collections.Generic", "key": "msdyn_project", "value": "%(message)s"}]}%(parent_tag)s],
    "Stage": 30, "UserId": "%(user)s"
  },
  "PostEntityImages": %(post)s,
  "PreEntityImages": [],
  "PrimaryEntityId": "%(id)s",
  "PrimaryEntityName": "msdyn_project",
  "RequestId": null,
  "SecondaryEntityName": "none",
  "SharedVariables": [],
  "Stage": 40,
  "UserId": "%(user)s"
}"""


def context_text(message: str = "Update", *, version: int = 5637611083, record_id: str = PROJECT_ID,
                 operation_id: str = OPERATION_ID, tag: str | None = None) -> str:
    """The RemoteExecutionContext text for ``message`` (Create, Update or Delete)."""
    fill = {"id": record_id, "user": USER_ID, "company": COMPANY_ID, "version": version}
    if message == "Delete":
        target, post, outputs = _DELETE_TARGET % fill, "[]", "[]"
    else:
        target = _TARGET_UPDATE % fill
        post = '[{"key": "AsynchronousStepPrimaryName", "value": %s}]' % (_POST_IMAGE % fill)
        outputs = f'[{{"key": "id", "value": "{record_id}"}}]' if message == "Create" else "[]"
    parent_tag = f', {{"key": "tag", "value": "{tag}"}}' if tag else ""
    return _CONTEXT % {**fill, "target": target, "post": post, "outputs": outputs, "message": message,
                       "correlation": CORRELATION_ID, "operation": operation_id, "parent_tag": parent_tag}


def context_body(message: str = "Update", **kw: Any) -> bytes:
    return context_text(message, **kw).encode("utf-8")


def stripped_body(message: str = "Update") -> bytes:
    """The context Dataverse sends over 256 KB: no ParentContext, InputParameters or images."""
    data = json.loads(context_text(message))
    for member in ("ParentContext", "InputParameters", "PreEntityImages", "PostEntityImages"):
        data.pop(member)
    return json.dumps(data).replace("/", "\\/").encode()


def webhook_headers(message: str = "Update", **extra: str) -> dict[str, str]:
    return {"Content-Type": "application/json", "x-ms-dynamics-organization": "org.crm.dynamics.com",
            "x-ms-dynamics-entity-name": "msdyn_project", "x-ms-dynamics-request-name": message,
            "x-ms-correlation-request-id": CORRELATION_ID, **extra}


def business_event(operation: str = "Update", *, entity: str = "CustCustomerV3Entity", control: int = 5637611083,
                   event_id: str = "0F8FAD5B-D9CB-469F-A165-70867728950E", **keys: Any) -> dict[str, Any]:
    """A per-entity business event as the Finance emulator sends it (keys at the top level)."""
    base = entity.removesuffix("Entity")
    past = {"Create": "Created", "Update": "Updated", "Delete": "Deleted"}[operation]
    event = {
        "BusinessEventId": f"{base}{past}BusinessEvent",
        "BusinessEventLegalEntity": "USMF",
        "ContextRecordSubject": "CustomersV3(dataAreaId='usmf',CustomerAccount='C-1')",
        "ControlNumber": control,
        "EventId": event_id,
        "EventTime": "/Date(1672408275000)/",
        "EventTimeIso8601": "2022-12-30T13:51:15.2942742Z",
        "InitiatingUserAADObjectId": "{00000000-0000-0000-0000-0000000000A1}",
        "MajorVersion": 0,
        "MinorVersion": 0,
        "ParentContextRecordSubjects": [],
        "EntityName": entity,
        "Operation": operation,
    }
    event.update(keys or {"dataAreaId": "usmf", "CustomerAccount": "C-1"})
    return event


def event_body(operation: str = "Update", **kw: Any) -> bytes:
    return json.dumps(business_event(operation, **kw)).encode()


@cache
def catalog() -> Catalog:
    return load_catalog(FIXTURES)


@cache
def compiled() -> dict[str, CompiledMap]:
    return compile_catalog(catalog())


DATA_EVENT_ROW_ID = "5a1f0c3e-8d2b-4f6a-9c7e-1b2d3e4f5a6b"

_DATA_EVENT_ENTITY = r"""{
      "__type": "Entity:http:\/\/schemas.microsoft.com\/xrm\/2011\/Contracts",
      "Attributes": [
        {"key": "mserp_custcustomerv3entityid", "value": "%(id)s"},
        {"key": "mserp_dataareaid", "value": "%(company)s"},
        {"key": "mserp_customeraccount", "value": "%(account)s"},
        {"key": "mserp_organizationname", "value": "Contoso Retail"},
        {"key": "mserp_modifieddatetime", "value": "\/Date(1672408275000)\/"}
      ],
      "EntityState": null, "FormattedValues": [], "Id": "%(id)s", "KeyAttributes": [],
      "LogicalName": "mserp_custcustomerv3entity", "RelatedEntities": [], "RowVersion": null
    }"""

_DATA_EVENT_REFERENCE = r"""{
      "__type": "EntityReference:http:\/\/schemas.microsoft.com\/xrm\/2011\/Contracts",
      "Id": "%(id)s", "KeyAttributes": [], "LogicalName": "mserp_custcustomerv3entity", "Name": null, "RowVersion": null
    }"""

_DATA_EVENT = r"""{
  "BusinessUnitId": "e2b9dd85-e89e-e711-8122-000d3a2ba2ea",
  "CorrelationId": "%(correlation)s",
  "Depth": 1,
  "InitiatingUserId": "%(user)s",
  "InputParameters": [%(params)s],
  "IsExecutingOffline": false, "IsInTransaction": false, "IsOfflinePlayback": false, "IsolationMode": 2,
  "MessageName": "%(message)s",
  "Mode": 1,
  "OperationCreatedOn": "\/Date(1672408275000)\/",
  "OperationId": "%(operation)s",
  "OrganizationId": "4ef5b371-b9c2-4a52-a2b1-3d5bb8d2f0a4",
  "OrganizationName": "OrgName",
  "OutputParameters": [],
  "OwningExtension": {"Id": "75417616-4f9f-e711-8122-000d3a2ba2eb", "KeyAttributes": [],
                      "LogicalName": "sdkmessageprocessingstep", "Name": null, "RowVersion": null},
  "ParentContext": null,
  "PostEntityImages": [],
  "PreEntityImages": [],
  "PrimaryEntityId": "%(id)s",
  "PrimaryEntityName": "mserp_custcustomerv3entity",
  "RequestId": null,
  "SecondaryEntityName": "none",
  "SharedVariables": [],
  "Stage": 40,
  "UserId": "%(user)s"
}"""


def data_event_body(message: str = "Update", *, account: str = "C-1", company: str = "usmf",
                    operation_id: str = OPERATION_ID) -> bytes:
    """A Finance data event (FO: business-events/data-events.md): a RemoteExecutionContext for the entity's
    virtual table, the row's fields in the Target (Create, Update) and PreImage input parameters."""
    fill = {"id": DATA_EVENT_ROW_ID, "account": account, "company": company}
    entity = _DATA_EVENT_ENTITY % fill
    if message == "Delete":
        params = (f'{{"key": "Target", "value": {_DATA_EVENT_REFERENCE % fill}}}, '
                  f'{{"key": "PreImage", "value": {entity}}}')
    else:
        params = f'{{"key": "Target", "value": {entity}}}'
    return (_DATA_EVENT % {**fill, "params": params, "message": message, "correlation": CORRELATION_ID,
                           "user": USER_ID, "operation": operation_id}).encode()


def servicebus_properties(table: str = "msdyn_project", message: str = "Update", **extra: object) -> dict[str, object]:
    """The application properties a Dataverse Service Bus endpoint sets (apis.md §2: ClaimTypes keys)."""
    claims = "http://schemas.microsoft.com/xrm/2011/Claims/"
    return {f"{claims}Organization": "org.crm.dynamics.com", f"{claims}User": USER_ID,
            f"{claims}InitiatingUser": USER_ID, f"{claims}EntityLogicalName": table,
            f"{claims}RequestName": message, **extra}
