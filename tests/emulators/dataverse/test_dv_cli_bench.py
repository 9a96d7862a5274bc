"""The ``dualsync emulator`` command and the emulator benchmark's result shape."""

from __future__ import annotations

from typer.testing import CliRunner

from bench import emulator as emulator_bench
from cli.main import app


def test_emulator_command_is_registered_and_rejects_bad_faults() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["emulator", "--help"])
    assert result.exit_code == 0 and "dataverse" in result.output and "--faults" in result.output
    bad = runner.invoke(app, ["emulator", "dataverse", "--port", "1", "--faults", "nonsense:9"])
    assert bad.exit_code == 2


def test_bench_quick_measures_both_emulators() -> None:
    result = emulator_bench.run(quick=True)
    assert result["bench"] == "emulator"
    figures = result["figures"]
    for key in ("dataverse_patch_per_s", "dataverse_batch_rows_per_s", "finance_patch_per_s",
                "finance_batch_rows_per_s"):
        assert figures[key] > 0, result
    assert result["ratios"]["dataverse_batch_vs_patch"] > 0
