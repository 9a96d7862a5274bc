"""``dualsync maps list | show | schema | validate``: read and check the map catalog."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from shared.catalog import CatalogError, TableMap, load_catalog
from shared.catalog.models import Side
from shared.catalog.schema import map_file_schema
from shared.catalog.validate import validate_directory
from shared.mapping import compile_map
from shared.settings import DEFAULT_MAPS_DIR

maps_app = typer.Typer(help="Read and check the map catalog (the files in maps/).", no_args_is_help=True)

MapsDir = typer.Option(
    DEFAULT_MAPS_DIR, "--maps-dir", envvar="DUALSYNC_MAPS_DIR", help="folder of map files",
    file_okay=False,
)


def _load(maps_dir: Path):  # -> Catalog
    try:
        return load_catalog(maps_dir)
    except CatalogError as exc:
        for problem in exc.problems:
            typer.echo(str(problem), err=True)
        typer.echo(f"error: the catalog in {maps_dir} has {len(exc.problems)} problem(s); "
                   "run `dualsync maps validate` for details", err=True)
        raise typer.Exit(1) from None


def summary(m: TableMap) -> dict[str, Any]:
    return {
        "name": m.name,
        "title": m.title,
        "version": m.version,
        "area": m.area.value,
        "direction": m.direction.value,
        "dataverse_table": m.dataverse.table,
        "dataverse_entity_set": m.dataverse.entity_set,
        "finance_entity": m.finance.entity,
        "finance_entity_set": m.finance.entity_set,
        "company_specific": m.company is not None,
        "depends_on": list(m.depends_on),
        "fields": len(m.fields),
    }


@maps_app.command("list")
def list_maps(as_json: bool = typer.Option(False, "--json", help="print a JSON array"),
              maps_dir: Path = MapsDir) -> None:
    """List every map with its tables, direction and dependencies.

    Example: dualsync maps list --json
    """
    catalog = _load(maps_dir)
    rows = [summary(m) for m in catalog]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    typer.echo(f"{'map':<26} {'direction':<21} {'dataverse table':<34} finance entity")
    for r in rows:
        typer.echo(f"{r['name']:<26} {r['direction']:<21} {r['dataverse_table']:<34} {r['finance_entity']}")
    typer.echo(f"{len(rows)} maps")


@maps_app.command("show")
def show(name: str = typer.Argument(..., help="map name, e.g. projects"),
         as_json: bool = typer.Option(False, "--json", help="print the map as JSON"),
         code: bool = typer.Option(False, "--code", help="also print the compiled functions"),
         maps_dir: Path = MapsDir) -> None:
    """Show one map: keys, company striping, fields and transforms.

    Example: dualsync maps show actuals
    """
    catalog = _load(maps_dir)
    if name not in catalog:
        typer.echo(f"error: no map named {name!r}; `dualsync maps list` shows the names", err=True)
        raise typer.Exit(2)
    m = catalog[name]
    if as_json:
        typer.echo(m.model_dump_json(indent=2, exclude_defaults=True))
        return
    typer.echo(f"{m.name} — {m.title} (version {m.version}, {m.area.value})")
    typer.echo(f"  {m.description.strip()}")
    typer.echo(f"  direction: {m.direction.value}")
    typer.echo(f"  dataverse: {m.dataverse.table} ({m.dataverse.entity_set}), key {m.dataverse.keys}"
               + (f", filter {m.dataverse.filter}" if m.dataverse.filter else ""))
    typer.echo(f"  finance:   {m.finance.entity} ({m.finance.entity_set}), key {m.finance.keys}"
               + (f", filter {m.finance.filter}" if m.finance.filter else ""))
    if m.company:
        typer.echo(f"  company:   {m.company.dataverse_lookup} <-> {m.company.finance_field}")
    typer.echo(f"  depends on: {', '.join(m.depends_on) or '-'}; deletes: {m.delete.value}")
    typer.echo("  fields:")
    for f in m.fields:
        direction = m.field_direction(f).value
        typer.echo(f"    {f.dataverse or '-':<36} {f.finance or '-':<28} {direction:<21} {f.transform.kind}")
    if code:
        compiled = compile_map(m, catalog)
        for side in (Side.FINANCE, Side.DATAVERSE):
            typer.echo(f"\n# to {side.value}\n{compiled.sources[side]}")


@maps_app.command("schema")
def schema() -> None:
    """Print the JSON Schema of a map file (point your editor at it).

    Example: dualsync maps schema > map.schema.json
    """
    typer.echo(json.dumps(map_file_schema(), indent=2))


@maps_app.command("validate")
def validate(metadata: Path | None = typer.Option(
                 None, "--metadata", help="folder of CSDL $metadata XML files to check names against",
                 file_okay=False),
             as_json: bool = typer.Option(False, "--json", help="print problems as a JSON array"),
             maps_dir: Path = MapsDir) -> None:
    """Check every map; exit 1 listing each problem with its code, file and field.

    Example: dualsync maps validate --metadata ./metadata
    """
    problems = validate_directory(maps_dir, metadata)
    if as_json:
        typer.echo(json.dumps([p.as_dict() for p in problems], indent=2))
    else:
        for p in problems:
            typer.echo(str(p))
        count = sum(1 for p in maps_dir.iterdir() if p.suffix in (".yaml", ".yml", ".json")) \
            if maps_dir.is_dir() else 0
        typer.echo(f"{count} map files, {len(problems)} problem(s)", err=bool(problems))
    if problems:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(maps_app, name="maps")
