"""``python -m sandbox.chaos [--changes N] [--rows N] [--seed N] [--json]``: one chaos run, its figures."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sandbox.chaos.run import ChaosOptions, ChaosRun


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.chaos", description=__doc__)
    parser.add_argument("--changes", type=int, default=5000, help="live changes across maps (default 5000)")
    parser.add_argument("--rows", type=int, default=300, help="demo rows (default 300)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--workdir", type=Path, default=Path(".dualsync/chaos"))
    parser.add_argument("--json", action="store_true", help="print one JSON object (figures and verdicts)")
    args = parser.parse_args(argv)
    say = (lambda text: print(text, file=sys.stderr)) if args.json else print
    result = ChaosRun(ChaosOptions(changes=args.changes, rows=args.rows, seed=args.seed, workdir=args.workdir),
                      say=say).run()
    summary = {
        "converged": result.converged,
        "figures": result.figures,
        "drift": {k: v for k, v in result.drift.items() if v["drift"]},
        "duplicates": result.duplicates,
        "errors_open_after_replay": len(result.errors_open_after_replay),
        "unexplained_validation": len(result.unexplained_validation),
    }
    print(json.dumps(summary, indent=None if args.json else 2))
    ok = result.converged and not result.errors_open_after_replay and not result.unexplained_validation
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
