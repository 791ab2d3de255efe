"""JSON Schemas of the hub protocol's payloads, generated from appliance.mqtt.payloads.

One self-contained file per payload struct (nested structs under `$defs`), written with
sorted keys, two-space indent and a trailing newline so regeneration is byte-for-byte
stable. `python -m hub.schemas` rewrites docs/schemas/; `--check` only reports drift
(tests/mqtt/test_schemas.py does the same).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import click
import msgspec

from appliance.mqtt.payloads import ALL_PAYLOADS, DOCUMENT_SHAPES, SCHEMA_VERSION

log = logging.getLogger(__name__)

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "docs" / "schemas"
DIALECT = "https://json-schema.org/draft/2020-12/schema"
REGENERATE = "python -m hub.schemas"


def schema_of(kind: type[msgspec.Struct]) -> dict[str, Any]:
    """The JSON Schema of one payload struct, with the structs it nests under `$defs`."""
    (_ref,), components = msgspec.json.schema_components([kind], ref_template="#/$defs/{name}")
    root = dict(components.pop(kind.__name__))
    document: dict[str, Any] = {
        "$schema": DIALECT,
        "$comment": (
            f"Generated from appliance.mqtt.payloads (schema version {SCHEMA_VERSION})"
            f" by `{REGENERATE}`; do not edit."
        ),
        **root,
    }
    if components:
        document["$defs"] = dict(components)
    return document


def render(
    kinds: Iterable[type[msgspec.Struct]] = (*ALL_PAYLOADS, *DOCUMENT_SHAPES),
) -> dict[str, str]:
    """File name -> exact file text for every payload struct."""
    return {
        f"{kind.__name__}.json": json.dumps(schema_of(kind), indent=2, sort_keys=True) + "\n"
        for kind in kinds
    }


def drift(directory: Path, expected: Mapping[str, str] | None = None) -> list[str]:
    """What differs between `directory` and the generated schemas (empty when in sync)."""
    wanted = render() if expected is None else expected
    present = {path.name for path in directory.glob("*.json")} if directory.is_dir() else set()
    problems = [f"missing: {name}" for name in sorted(wanted.keys() - present)]
    problems += [
        f"not generated from any payload: {name}" for name in sorted(present - wanted.keys())
    ]
    problems += [
        f"differs: {name}"
        for name in sorted(wanted.keys() & present)
        if (directory / name).read_text(encoding="utf-8") != wanted[name]
    ]
    return problems


def write(directory: Path) -> list[Path]:
    """Rewrite `directory` to hold exactly the generated schemas; return the files written."""
    files = render()
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.json"):
        if stale.name not in files:
            stale.unlink()
            log.info("removed stale schema %s", stale)
    written = []
    for name, text in files.items():
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            log.info("wrote %s", path)
        written.append(path)
    return written


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=SCHEMA_DIR)
@click.option("--check", is_flag=True, help="Only report drift; exit 1 if any.")
def main(directory: Path, check: bool) -> None:
    """Regenerate the payload JSON Schemas in DIRECTORY (default: docs/schemas)."""
    if check:
        problems = drift(directory)
        for problem in problems:
            click.echo(problem, err=True)
        if problems:
            raise click.ClickException(f"schemas out of date: run {REGENERATE}")
        click.echo(f"{len(ALL_PAYLOADS) + len(DOCUMENT_SHAPES)} schemas up to date in {directory}")
        return
    written = write(directory)
    click.echo(f"{len(written)} schemas in {directory}")


if __name__ == "__main__":
    main()
