"""Read map files from a folder into :class:`Catalog`, reporting every problem at once."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from shared.catalog.models import Catalog, TableMap
from shared.catalog.problems import CatalogError, Code, Problem

MAP_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class MapFile:
    path: Path
    map: TableMap


def _parse(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return json.loads(text)
    return yaml.safe_load(text)


def _loc(loc: tuple[Any, ...], data: Any) -> str:
    """Turn a pydantic location into a readable path, naming fields by their columns."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int) and isinstance(node, list) and 0 <= item < len(node):
            node = node[item]
            label = ""
            if isinstance(node, dict):
                label = str(node.get("dataverse") or node.get("finance") or "")
            parts.append(f"[{item}]" + (f"({label})" if label else ""))
            continue
        parts.append(("." if parts else "") + str(item))
        node = node.get(item) if isinstance(node, dict) else None
    return "".join(parts)


def read_map_files(directory: Path) -> tuple[list[MapFile], list[Problem]]:
    """Parse and validate each file on its own; cross-map rules are :mod:`validate`'s job."""
    files: list[MapFile] = []
    problems: list[Problem] = []
    if not directory.is_dir():
        return [], [Problem(Code.UNREADABLE, str(directory), "the maps folder does not exist")]
    for path in sorted(p for p in directory.iterdir() if p.suffix in MAP_SUFFIXES):
        name = path.name
        try:
            data = _parse(path)
        except (OSError, UnicodeDecodeError, yaml.YAMLError, json.JSONDecodeError) as exc:
            problems.append(Problem(Code.UNREADABLE, name, f"cannot read the file: {exc}".splitlines()[0]))
            continue
        if not isinstance(data, dict):
            problems.append(Problem(Code.SCHEMA, name, "a map file holds one mapping (an object) at the top"))
            continue
        try:
            table_map = TableMap.model_validate(data)
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                problems.append(
                    Problem(Code.SCHEMA, name, err["msg"], map=data.get("name"), field=_loc(err["loc"], data))
                )
            continue
        if path.stem != table_map.name:
            problems.append(
                Problem(
                    Code.FILE_NAME,
                    name,
                    f"the file holds map {table_map.name!r}; name the file {table_map.name}{path.suffix}",
                    map=table_map.name,
                )
            )
        files.append(MapFile(path, table_map))
    return files, problems


def load_catalog(directory: Path | None = None) -> Catalog:
    """Load and validate the whole catalog; raise :class:`CatalogError` listing every problem."""
    from shared.catalog.validate import validate_files  # validate imports models only; no cycle at runtime

    if directory is None:
        from shared.settings import DEFAULT_MAPS_DIR

        directory = DEFAULT_MAPS_DIR
    files, problems = read_map_files(directory)
    problems += validate_files(files)
    if problems:
        raise CatalogError(problems)
    return Catalog({f.map.name: f.map for f in files})
