"""``dualsync deploy topology | package``: what a deployment to Azure takes from this repository."""

from __future__ import annotations

from pathlib import Path

import typer

from shared.catalog import CatalogError, load_catalog
from shared.settings import DEFAULT_MAPS_DIR

deploy_app = typer.Typer(help="Prepare a deployment to Azure (see docs/deploy.md).", no_args_is_help=True)


@deploy_app.command("topology")
def topology(
    as_json: bool = typer.Option(False, "--json", help="print the topology JSON instead of writing it"),
    out: Path | None = typer.Option(None, "--out", help="file to write (default infra/topology.json)",
                                    dir_okay=False),
    maps_dir: Path = typer.Option(DEFAULT_MAPS_DIR, "--maps-dir", envvar="DUALSYNC_MAPS_DIR",
                                  help="folder of map files", file_okay=False),
) -> None:
    """Generate the Service Bus topology (topic, one filtered subscription per map, queues) from the
    catalog, into the file the Bicep template reads.

    Example: dualsync deploy topology && git diff infra/topology.json
    """
    from deploy.topology import DEFAULT_TOPOLOGY_FILE, TopologyError, build_topology, write_topology

    try:
        built = build_topology(load_catalog(maps_dir))
    except CatalogError as exc:
        typer.echo(f"error: the catalog in {maps_dir} has {len(exc.problems)} problem(s); "
                   "run `dualsync maps validate` for details", err=True)
        raise typer.Exit(1) from None
    except TopologyError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if as_json and out is None:
        typer.echo(built.dumps(), nl=False)
        return
    path = write_topology(built, out or DEFAULT_TOPOLOGY_FILE)
    typer.echo(f"wrote {path}: topic {built.topic.name}, {len(built.subscriptions)} subscriptions, "
               f"{len(built.queues)} queues")


@deploy_app.command("package")
def package(out: Path = typer.Option(Path("dist/dualsync-functions.zip"), "--out", help="zip file to write",
                                     dir_okay=False)) -> None:
    """Build the zip the Functions runtime deploys (function_app.py, host.json, requirements.txt,
    functions/, shared/, maps/).

    Example: dualsync deploy package --out app.zip && az functionapp deployment source config-zip ...
    """
    from deploy.package import PackageError, build_package

    try:
        report = build_package(out)
    except PackageError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"wrote {report.path}: {report.files} files, {report.bytes / 1024:.0f} KiB before compression")


def register(app: typer.Typer) -> None:
    app.add_typer(deploy_app, name="deploy")
