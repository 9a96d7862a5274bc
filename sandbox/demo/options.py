"""Option-set values and Finance enum symbols the demo rows use.

The allowed values come from the emulators' schemas (``sandbox/dataverse/schema.yaml``,
``sandbox/finance/schema.yaml``). Meanings follow the CE entity references where the maps cite them
(transaction type, billing type); where a meaning is assumed, it is marked so.
"""

from __future__ import annotations

# msdyn_transactionclass / msdyn_transactionclassification. Assumed to follow the order of Finance's
# ProjTransactionClassification enum (Time, Expense, Material, Fee, Milestone, Tax), as the schema does.
CLASS_TIME = 192350000
CLASS_EXPENSE = 192350001
CLASS_MATERIAL = 192350002

# msdyn_transactiontypecode (CE entity reference msdyn_actual; actuals map)
TYPE_COST = 192350000
TYPE_UNBILLED_SALES = 192350005

# msdyn_billingtype (CE entity reference msdyn_actual; actuals map)
BILLING_NON_CHARGEABLE = 192350000
BILLING_CHARGEABLE = 192350001

# msdyn_billingmethod on contract lines: time and material, fixed price (project_contract_lines map)
BILLING_METHOD_TM = 192350000
BILLING_METHOD_FIXED = 192350001

# salesorder.msdyn_ordertype: work based (project contract)
ORDER_TYPE_WORK_BASED = 690970002

# msdyn_transactionconnection: the record type of each side (assumed: 192350000 = actual) and the
# role of each side (assumed to follow Finance's ProjTransactionRole: Cost, UnbilledSales, ...)
CONNECTION_RECORD_ACTUAL = 192350000
ROLE_COST = 192350000
ROLE_UNBILLED_SALES = 192350001

# msdyn_contractlinescheduleofvalue.msdyn_invoicestatus: not ready for invoicing (assumed)
MILESTONE_NOT_READY = 192350000

# msdyn_projectcontractsplitbillingrule.msdyn_fundingtype: customer (assumed)
FUNDING_CUSTOMER = 192350000

# cdm_worker.cdm_type: employee, contractor (assumed order)
WORKER_EMPLOYEE = 754400000
WORKER_CONTRACTOR = 754400001

# bookableresource.resourcetype: user (worker_resources map)
RESOURCE_USER = 3

# account.customertypecode: customer (customers map writes 3)
CUSTOMER_TYPE_CUSTOMER = 3
# account.customertypecode: vendor (the vendor-to-account workflow's accounts; the customers map skips them)
CUSTOMER_TYPE_VENDOR = 11

# msdyn_vendor.msdyn_onholdstatus: not on hold (assumed)
VENDOR_NOT_ON_HOLD = 192350000
