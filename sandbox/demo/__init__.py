"""Demo Project Operations data for the emulators: seeded, streaming, consistent across both sides.

    from sandbox.demo import generate, load
    for side, entity_set, row in generate(rows=10_000, seed=7): ...
    counts = load(dataverse_emulator, finance_emulator, rows=100_000, seed=7)

Masters are generated on their own side (docs/catalog-tables.md); the other side is what the sync
fills. ``python -m sandbox.demo --rows N --seed S --stats`` prints the counts per entity set.
"""

from sandbox.demo.generate import generate, generate_plan
from sandbox.demo.load import load
from sandbox.demo.plan import Plan
from sandbox.demo.rows import DATAVERSE, FINANCE, DemoRow, Side

__all__ = ["DATAVERSE", "FINANCE", "DemoRow", "Plan", "Side", "generate", "generate_plan", "load"]
