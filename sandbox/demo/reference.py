"""Reference data and prerequisites: currencies, legal entities, exchange rates, ledgers, workers,
customers, vendors (Finance masters), and the Dataverse rows the Dataverse masters point at.

Dataverse masters need GUIDs for their company, worker, currency and customer lookups, and no
Finance-to-Dataverse map can give a row the GUID a demo row already points at. So, as a tenant does
after the prerequisites' initial sync from Finance, ``cdm_companies``, ``cdm_workers`` and the
customers that exist on both sides are seeded in Dataverse too (same natural keys; the sync finds them
by alternate key). Exchange rates, ledgers, vendors and the Finance-only customers are left to the sync.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from sandbox.demo import options as opt
from sandbox.demo.ids import pick
from sandbox.demo.plan import (
    COMPANIES,
    CURRENCIES,
    PERIOD_MONTHS,
    PERIOD_START,
    RATE_TYPE,
    UNITS,
    Company,
    customer_side,
    vendor_side,
)
from sandbox.demo.rows import DemoRow, Row, day, dv, fo, money, stamp
from sandbox.demo.world import World


def _month_start(m: int) -> tuple[str, str]:
    y, mo = divmod(PERIOD_START.month - 1 + m, 12)
    start = PERIOD_START.replace(year=PERIOD_START.year + y, month=mo + 1, day=1)
    y2, mo2 = divmod(mo + 1, 12)
    end = start.replace(year=start.year + y2, month=mo2 + 1) - timedelta(days=1)
    return day(start), day(end)


def finance_reference(w: World) -> Iterator[DemoRow]:
    for c in CURRENCIES:
        yield fo("Currencies", {"CurrencyCode": c.code, "Name": c.name, "Symbol": c.symbol,
                                "RoundingPrecision": 0.01})
    for co in COMPANIES:
        yield fo("LegalEntities", {"LegalEntityId": co.code, "Name": co.name, "AccountingCurrency": co.currency,
                                   "AddressCountryRegionId": co.country, "LanguageId": co.language,
                                   "TimeZone": co.time_zone})
    yield from _exchange_rates(w)
    for co in COMPANIES:
        yield fo("Ledgers", {"LegalEntityId": co.code, "Name": co.code, "Description": f"{co.name} ledger",
                             "ChartOfAccounts": "Shared", "FiscalCalendar": "Fiscal",
                             "AccountingCurrency": co.currency, "ReportingCurrency": "USD",
                             "DefaultExchangeRateType": RATE_TYPE, "BudgetExchangeRateType": RATE_TYPE})
    for i in range(w.plan.workers):
        wk = w.worker(i)
        yield fo("Workers", {"PersonnelNumber": wk.number, "Name": wk.full_name, "FirstName": wk.first,
                             "LastName": wk.last, "PrimaryContactEmail": wk.email,
                             "WorkerType": "Contractor" if i % 10 == 9 else "Employee",
                             "EmploymentLegalEntityId": wk.company.code,
                             "EmploymentStartDate": stamp(PERIOD_START - timedelta(days=30 + 7 * i % 2000))})
    for co in COMPANIES:
        for k in range(w.plan.customers_per_company):
            if customer_side(k) != "dataverse":
                yield fo("CustomersV3", _finance_customer(w, co, k))
    for co in COMPANIES:
        for k in range(w.plan.vendors_per_company):
            if vendor_side(k) == "finance":
                yield fo("VendorsV2", {
                    "dataAreaId": co.area, "VendorAccountNumber": w.vendor_account(co, k),
                    "VendorOrganizationName": w.vendor_name(co, k), "VendorGroupId": "Services",
                    "CurrencyCode": co.currency, "PaymentTerms": "Net45",
                    "PrimaryContactEmail": f"ap{k}@vendor.example", "AddressCountryRegionId": co.country,
                    "AddressCity": co.city, "OnHoldStatus": "No"})


def _exchange_rates(w: World) -> Iterator[DemoRow]:
    """Every directed pair of currencies, one rate per month, drifting up to 2 % around the base rate."""
    def per_usd(code: str, m: int) -> float:
        if code == "USD":
            return 1.0
        drift = (pick(w.seed, "rate." + code, m, 2001) - 1000) / 50_000
        return w.rate(code) * (1 + drift)

    for m in range(PERIOD_MONTHS):
        start, end = _month_start(m)
        for a in CURRENCIES:
            for b in CURRENCIES:
                if a.code != b.code:
                    yield fo("ExchangeRates", {
                        "RateTypeName": RATE_TYPE, "FromCurrency": a.code, "ToCurrency": b.code,
                        "StartDate": start, "EndDate": end,
                        "Rate": round(per_usd(b.code, m) / per_usd(a.code, m), 6),
                        "ConversionFactor": "One", "RateTypeDescription": "Default rate type"})


def _finance_customer(w: World, co: Company, k: int) -> Row:
    return {"dataAreaId": co.area, "CustomerAccount": w.customer_account(co, k),
            "OrganizationName": w.customer_name(co, k), "PartyType": "Organization",
            "CustomerGroupId": "10" if k % 3 else "20", "SalesCurrencyCode": co.currency,
            "PaymentTerms": "Net30", "CreditLimit": float(50_000 * (1 + k % 4)),
            "PrimaryContactEmail": f"billing{k}@customer.example", "PrimaryContactPhone": f"+1 555 01{k % 100:02d}",
            "AddressCountryRegionId": co.country, "AddressCity": co.city,
            "AddressStreet": f"{1 + k} Main Street", "AddressZipCode": f"{10000 + k}", "IsOnHold": "No"}


def dataverse_prerequisites(w: World) -> Iterator[DemoRow]:
    for c in CURRENCIES:
        yield dv("transactioncurrencies", {
            "transactioncurrencyid": w.currency_id(c.code), "currencyname": c.name, "isocurrencycode": c.code,
            "currencysymbol": c.symbol, "currencyprecision": 2, "exchangerate": c.per_usd})
    for name, quantity in UNITS:
        yield dv("uoms", {"uomid": w.unit_id(name), "name": name, "quantity": quantity})
    for co in COMPANIES:
        yield dv("cdm_companies", {"cdm_companyid": w.company_id(co), "cdm_companycode": co.code,
                                   "cdm_name": co.name,
                                   "_msdyn_defaultcurrency_value": w.currency_id(co.currency)})
    for co in COMPANIES:
        yield dv("msdyn_organizationalunits", {
            "msdyn_organizationalunitid": w.org_unit_id(co), "msdyn_name": f"{co.name} delivery",
            "msdyn_description": f"Contracting and resourcing unit of {co.code}",
            "_msdyn_currency_value": w.currency_id(co.currency), "_msdyn_company_value": w.company_id(co)})
    for i in range(w.plan.workers):
        wk = w.worker(i)
        yield dv("cdm_workers", {
            "cdm_workerid": wk.guid, "cdm_workernumber": wk.number, "cdm_firstname": wk.first,
            "cdm_lastname": wk.last, "cdm_fullname": wk.full_name, "cdm_primaryemailaddress": wk.email,
            "cdm_type": opt.WORKER_CONTRACTOR if i % 10 == 9 else opt.WORKER_EMPLOYEE})
    for co in COMPANIES:
        for k in range(w.plan.customers_per_company):
            if customer_side(k) != "finance":
                yield dv("accounts", {
                    "accountid": w.customer_id(co, k), "name": w.customer_name(co, k),
                    "accountnumber": w.customer_account(co, k), "_msdyn_company_value": w.company_id(co),
                    "customertypecode": opt.CUSTOMER_TYPE_CUSTOMER,
                    "msdyn_customergroupid": "10" if k % 3 else "20", "msdyn_paymentterms": "Net30",
                    "creditlimit": money(50_000 * (1 + k % 4)), "emailaddress1": f"billing{k}@customer.example",
                    "telephone1": f"+1 555 01{k % 100:02d}", "address1_line1": f"{1 + k} Main Street",
                    "address1_city": co.city, "address1_postalcode": f"{10000 + k}",
                    "address1_country": co.country, "_transactioncurrencyid_value": w.currency_id(co.currency),
                    "exchangerate": w.rate(co.currency)})
    for co in COMPANIES:
        for k in range(w.plan.vendors_per_company):
            if vendor_side(k) == "dataverse":
                yield dv("msdyn_vendors", {
                    "msdyn_vendorid": w.id("msdyn_vendor", f"{co.code}/{k}"),
                    "msdyn_vendoraccountnumber": w.vendor_account(co, k), "msdyn_vendorname": w.vendor_name(co, k),
                    "_msdyn_company_value": w.company_id(co), "msdyn_vendorgroupid": "Services",
                    "msdyn_paymentterms": "Net45", "_msdyn_currencycode_value": w.currency_id(co.currency),
                    "msdyn_onholdstatus": opt.VENDOR_NOT_ON_HOLD, "msdyn_address1_city": co.city,
                    "msdyn_address1_countryregionid": co.country})
    # Project Operations needs every vendor as an account in its company (the vendor-to-account
    # workflow, not a map): vendor invoices look the vendor up there (msdyn_vendor -> account). Its
    # currency and group come from the vendor; the customers map's filter (type 3) leaves them out.
    for co in COMPANIES:
        for k in range(w.plan.vendors_per_company):
            yield dv("accounts", {
                "accountid": w.id("account", f"vendor/{co.code}/{k}"), "name": w.vendor_name(co, k),
                "accountnumber": w.vendor_account(co, k), "_msdyn_company_value": w.company_id(co),
                "customertypecode": opt.CUSTOMER_TYPE_VENDOR, "msdyn_customergroupid": "Vendors",
                "_transactioncurrencyid_value": w.currency_id(co.currency), "exchangerate": w.rate(co.currency)})
