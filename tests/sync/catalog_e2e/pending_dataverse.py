"""Dataverse schema changes the catalog needs and the emulator does not have yet.

Each entry is requested from the Dataverse emulator's owner (with its public source) in
/tmp/dv_schema_requests.md. The catalog tests run the emulator with exactly these overlaid, and check
that the unmodified emulator's `maps validate` problems are exactly the ones these entries explain, so
an entry that lands upstream (or a new mismatch) fails the test instead of hiding.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from sandbox.dataverse.schema import SCHEMA_FILE, Schema, parse_schema

CLASSIFICATION = "picklist[192350000,192350001,192350002,192350003,192350004,690970000,690970001,690970002]"

# table -> column -> column spec (schema.yaml shorthand)
PENDING_COLUMNS: dict[str, dict[str, str]] = {
    "msdyn_projecttask": {"msdyn_company": "lookup(cdm_company)"},
    "msdyn_resourceassignment": {"msdyn_company": "lookup(cdm_company)"},
    "msdyn_estimateline": {"msdyn_company": "lookup(cdm_company)", "msdyn_transactionclassification": CLASSIFICATION},
    "msdyn_actual": {"msdyn_company": "lookup(cdm_company)", "msdyn_accountingdate": "dateonly",
                     "msdyn_transactionclassification": CLASSIFICATION},
}

# (map file, field label) of each `maps validate` problem the pending columns explain
EXPLAINED_PROBLEMS = {
    ("project_tasks.yaml", "company"), ("hour_estimates.yaml", "company"),
    ("expense_estimates.yaml", "company"), ("material_estimates.yaml", "company"),
    ("actuals.yaml", "company"), ("actuals.yaml", "msdyn_accountingdate <-> AccountingDate"),
}


def overlaid_schema() -> Schema:
    data: dict[str, Any] = yaml.safe_load(SCHEMA_FILE.read_text(encoding="utf-8"))
    data = copy.deepcopy(data)
    for table, columns in PENDING_COLUMNS.items():
        data["tables"][table]["columns"].update(columns)
    return parse_schema(data)
