"""Streaming: memory stays bounded whatever the size; the command line prints counts or rows."""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
from collections import Counter
from pathlib import Path

from sandbox.demo import Plan, generate

ROOT = Path(__file__).resolve().parents[3]
PEAK_BOUND = 30 * 1024 * 1024


def peak_while_consuming(rows: int) -> tuple[int, int]:
    tracemalloc.start()
    try:
        n = 0
        for _ in generate(rows, 42):
            n += 1
        return n, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_generating_200k_rows_keeps_peak_memory_bounded() -> None:
    n, peak = peak_while_consuming(200_000)
    assert n == Plan.for_rows(200_000).expected_rows()
    assert peak < PEAK_BOUND, f"peak {peak / 2**20:.1f} MiB"
    # storing those rows would take far more than the bound: the bound does prove streaming
    tracemalloc.start()
    try:
        kept = [r for _, r in zip(range(5_000), generate(200_000, 42), strict=False)]
        per_row = tracemalloc.get_traced_memory()[0] / len(kept)
    finally:
        tracemalloc.stop()
    assert per_row * n > 3 * PEAK_BOUND


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sandbox.demo", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)


def test_cli_prints_counts_per_entity_set() -> None:
    done = run_cli("--rows", "5000", "--seed", "3", "--stats")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    printed = {tuple(line.split()[:2]): int(line.split()[2].replace(",", "")) for line in lines[:-1]}
    expected = Counter((r.side, r.entity_set) for r in generate(5000, 3))
    assert printed == dict(expected)
    assert lines[-1].startswith("total") and int(lines[-1].split()[1].replace(",", "")) == sum(expected.values())


def test_cli_streams_rows_as_json_lines() -> None:
    done = run_cli("--rows", "1000", "--seed", "4", "--counterparts")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert rows == [{"side": s, "entity_set": e, "row": r} for s, e, r in generate(1000, 4, counterparts=True)]


def test_cli_refuses_a_negative_size() -> None:
    done = run_cli("--rows", "-1", "--stats")
    assert done.returncode == 2 and "--rows" in done.stderr
