"""One sandbox run (small demo data, every scenario) shared by the scenario tests: real emulators on
loopback, the dev host serving function_app, the embedded broker; scenarios act over HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.run.orchestrate import Sandbox, SandboxOptions, SandboxResult


@pytest.fixture(scope="session")
def sandbox_run(tmp_path_factory: pytest.TempPathFactory) -> SandboxResult:
    workdir: Path = tmp_path_factory.mktemp("scenarios") / "sandbox"
    return Sandbox(SandboxOptions(rows=300, workdir=workdir, settle_timeout=60)).run()
