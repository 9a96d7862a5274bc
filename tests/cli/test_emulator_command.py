"""``dualsync emulator``: the --flows-every option reaches the Finance emulator; Dataverse refuses it."""

from __future__ import annotations

from typer.testing import CliRunner

from cli.main import app

runner = CliRunner()


def test_help_names_flows_every():
    result = runner.invoke(app, ["emulator", "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert "--flows-every" in result.output


def test_finance_gets_flows_every(mocker):
    served = mocker.patch("uvicorn.run")
    result = runner.invoke(app, ["emulator", "finance", "--port", "5999", "--flows-every", "2.5"])
    assert result.exit_code == 0, result.output
    [starlette_app], options = served.call_args
    assert options["port"] == 5999
    assert starlette_app.state.emulator.flows_every == 2.5
    assert "flows every 2.5 s" in result.output


def test_finance_without_flows_every_runs_no_schedule(mocker):
    served = mocker.patch("uvicorn.run")
    assert runner.invoke(app, ["emulator", "finance"]).exit_code == 0
    assert served.call_args.args[0].state.emulator.flows_every is None


def test_dataverse_refuses_flows_every(mocker):
    served = mocker.patch("uvicorn.run")
    result = runner.invoke(app, ["emulator", "dataverse", "--flows-every", "5"])
    assert result.exit_code == 2
    assert "--flows-every" in result.output
    served.assert_not_called()
