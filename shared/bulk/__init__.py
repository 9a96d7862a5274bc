"""Bulk work over whole tables: initial sync (local and distributed) and reconcile.

- :mod:`plan`: which maps, in which order, from which side.
- :mod:`source`: a map's rows streamed page by page, with the continuation to resume from.
- :mod:`refs`: lookups resolved in bulk (one query per referenced map per page), parents checked.
- :mod:`writer`: mapped rows to batched writes, per-row results, ledger entries.
- :mod:`engine`: the initial sync itself (checkpoints, progress, error store).
- :mod:`distributed`: work items on a queue, processed by the function app's instances.
- :mod:`reconcile`: both sides compared by integration key, drift reported and repaired.
"""

from shared.bulk.context import BulkContext
from shared.bulk.engine import InitialSync, MapSummary, Progress, RunSummary
from shared.bulk.plan import InitialSyncPlanError, master_sides, sync_order

__all__ = ["BulkContext", "InitialSync", "InitialSyncPlanError", "MapSummary", "Progress", "RunSummary",
           "master_sides", "sync_order"]
