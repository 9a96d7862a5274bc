"""The second pass of a two-sided map skips the rows the first pass brought over, reading the ledger in
bulk: one ``get_ledgers`` per page, never a ``get_ledger`` per row, and the same rows skipped."""

from __future__ import annotations

from typing import Any

from shared.bulk import InitialSync
from shared.bulk.plan import master_sides
from shared.catalog.models import Side
from shared.sync.handler import ledger_key
from tests.bulk.conftest import COMPILED
from tests.bulk.test_initial_sync import keys_on

MAPS = ["currencies", "legal_entities", "customers"]


async def test_second_pass_reads_the_ledger_once_per_page(bulk, mocker):
    ctx, dv, fo = bulk
    cm = COMPILED["customers"]
    assert master_sides(cm.map) == (Side.FINANCE, Side.DATAVERSE)  # two-sided: Dataverse is the second pass
    finance_before = keys_on(Side.FINANCE, "customers", dv, fo)
    one_read = mocker.spy(ctx.state, "get_ledger")
    bulk_read = mocker.spy(ctx.state, "get_ledgers")
    reports: list[Any] = []

    summary = await InitialSync(ctx, progress=reports.append, page_size=10).run(MAPS)

    customers = next(m for m in summary.maps if m.map == "customers")
    assert summary.failed == 0, summary.as_dict()
    one_read.assert_not_called()  # no state-store round trip per row
    calls = [(c.args[0], list(c.args[1])) for c in bulk_read.call_args_list]
    assert {name for name, _ in calls} == {"customers"}  # only the two-sided map has a second pass
    second_pass_pages = [r for r in reports if r.map == "customers" and r.source == Side.DATAVERSE.value]
    assert len(second_pass_pages) > 1  # several pages, so "once per page" is not "once"
    assert len(calls) == len(second_pass_pages)
    assert all(0 < len(keys) <= 10 for _, keys in calls)  # a page's keys, page_size 10
    # the second pass read what Dataverse held after the first: its own rows and those brought over
    first_pass_read = max(r.read for r in reports if r.map == "customers" and r.source == Side.FINANCE.value)
    asked = [k for _, keys in calls for k in keys]
    assert len(asked) == customers.read - first_pass_read
    assert set(asked) >= {ledger_key(k, Side.DATAVERSE) for k in finance_before}
    assert set(asked) > {ledger_key(k, Side.DATAVERSE) for k in finance_before}  # rows of Dataverse's own

    # the rows skipped are those the per-row check skips: a ledger entry written by the first pass
    mirrored = 0
    for key in asked:
        entry = await ctx.state.get_ledger("customers", key)
        mirrored += entry is not None and entry.source_side == Side.FINANCE.value
    assert customers.skipped == mirrored == first_pass_read  # every row brought over, and only those
    assert 0 < customers.skipped < len(asked)
    assert customers.written == customers.read - customers.skipped
    # Dataverse's own rows reached Finance
    on_finance = {ledger_key(k, Side.DATAVERSE) for k in keys_on(Side.FINANCE, "customers", dv, fo)}
    assert set(asked) <= on_finance
    cp = await ctx.state.get_checkpoint("initial-sync:customers")
    assert cp is not None and cp.data["skipped"] == customers.skipped
