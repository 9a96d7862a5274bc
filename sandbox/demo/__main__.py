"""``python -m sandbox.demo --rows N --seed S [--stats] [--counterparts]``

Without ``--stats``: one JSON object per row on stdout (``{"side", "entity_set", "row"}``), streamed.
With ``--stats``: the number of rows per entity set, in generation order, and the total.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter

from sandbox.demo.generate import generate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000, help="approximate total number of rows")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stats", action="store_true", help="print counts per entity set instead of rows")
    parser.add_argument("--counterparts", action="store_true",
                        help="also yield the Finance copies of projects, tasks and shared categories")
    args = parser.parse_args(argv)
    if args.rows < 0:
        parser.error("--rows must be >= 0")
    rows = generate(args.rows, args.seed, counterparts=args.counterparts)
    out = sys.stdout
    if not args.stats:
        for item in rows:
            out.write(json.dumps(item._asdict(), ensure_ascii=False))
            out.write("\n")
        return 0
    started = time.perf_counter()
    counts: Counter[tuple[str, str]] = Counter((r.side, r.entity_set) for r in rows)
    elapsed = time.perf_counter() - started
    width = max(len(s) for _, s in counts)
    for (side_name, entity_set), n in counts.items():
        out.write(f"{side_name:<10} {entity_set:<{width}} {n:>10,}\n")
    total = sum(counts.values())
    out.write(f"{'total':<10} {'':<{width}} {total:>10,}   ({elapsed:.1f} s, {total / max(elapsed, 1e-9):,.0f} rows/s)\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
