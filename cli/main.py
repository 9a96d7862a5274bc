"""The ``dualsync`` command line. Each module in ``cli/commands/`` adds its commands."""

from __future__ import annotations

import importlib
import pkgutil

import typer

import cli.commands

app = typer.Typer(
    name="dualsync",
    help="Keep Dataverse and Dynamics 365 Finance in sync for Project Operations.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _register_commands() -> None:
    # Every module in cli/commands defines register(app); discovered so commands stay independent.
    for info in sorted(pkgutil.iter_modules(cli.commands.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"cli.commands.{info.name}")
        module.register(app)


_register_commands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
