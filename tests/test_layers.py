"""Every module of the appliance imports only its own layer and those below (docs/layers.md)."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import appliance
from tests.core.test_layering import imported_names

PACKAGE_DIR = Path(appliance.__file__).parent
LAYERS_DOC = PACKAGE_DIR.parent / "docs" / "layers.md"


@dataclass(frozen=True, slots=True)
class Layer:
    """A named set of packages; it may import itself and every layer of a lower rank."""

    name: str
    rank: int
    packages: frozenset[str]  # top-level modules and packages of `appliance`


def layer(name: str, rank: int, *packages: str) -> Layer:
    """A layer of the table."""
    return Layer(name, rank, frozenset(packages))


# The layer table (docs/layers.md says why each row sits where it does). "appliance" is the
# root package itself (its version). Layers of the same rank are siblings: they never import
# each other, except for the edges in SIBLING_IMPORTS.
LAYERS = (
    layer("base", 0, "appliance", "errors"),
    layer("core", 1, "core"),
    layer("settings", 2, "settings", "device_settings"),
    layer("store", 3, "store"),
    layer("drivers", 3, "drivers"),
    layer("mqtt", 3, "mqtt"),
    layer("provisioning", 3, "provisioning"),
    layer("update", 3, "update"),
    layer("service", 4, "service", "catalog_import"),
    layer("screens", 5, "screens"),
    layer("cli", 6, "cli", "__main__"),
)
# The hub link's job is to sync the store's outbox and catalog versions with the hub; an
# update is a fleet command whose job reports travel over the hub link.
SIBLING_IMPORTS = frozenset({("mqtt", "store"), ("update", "mqtt")})

# "appliance.x.y:Name" in a registry dict is an import that happens later, by name.
REGISTRY_ENTRY = re.compile(r"^(appliance(?:\.\w+)+):\w+$")


def layer_of(dotted: str) -> Layer | None:
    """The layer of an `appliance...` name; None when no row of the table holds it."""
    parts = dotted.split(".")
    top = parts[1] if len(parts) > 1 else "appliance"
    if top.startswith("__") and not _is_top_level(top):
        top = "appliance"  # `from appliance import __version__`: an attribute of the root
    return next((row for row in LAYERS if top in row.packages), None)


def _is_top_level(name: str) -> bool:
    return (PACKAGE_DIR / f"{name}.py").exists() or (PACKAGE_DIR / name / "__init__.py").exists()


def may_import(importer: Layer, imported: Layer) -> bool:
    """The layering rule: own layer, lower ranks, and the named sibling edges."""
    if importer == imported or imported.rank < importer.rank:
        return True
    return (importer.name, imported.name) in SIBLING_IMPORTS


def imports_of(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, name) of every `appliance` module `source` imports, at any depth or by name."""
    found = [
        (line, name)
        for line, name in imported_names(source, module, is_package)
        if name == "appliance" or name.startswith("appliance.")
    ]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            match = REGISTRY_ENTRY.match(node.value)
            if match:
                found.append((node.lineno, match.group(1)))
    return sorted(found)


def layer_violations(source: str, module: str, is_package: bool = False) -> list[str]:
    """Why each import in `source` breaks the layer table."""
    importer = layer_of(module)
    if importer is None:
        return [f"{module} is in no layer: give its package a row in the table"]
    found = []
    for line, name in imports_of(source, module, is_package):
        if name == "appliance":
            continue  # the bare base of `from appliance import x`; x is recorded on its own
        imported = layer_of(name)
        if imported is None:
            found.append(f"{module}:{line} imports {name} (which is in no layer)")
        elif not may_import(importer, imported):
            found.append(
                f"{module}:{line} imports {name}"
                f" (layer {importer.name} may not import layer {imported.name})"
            )
    return found


def appliance_modules() -> list[tuple[str, Path]]:
    """(dotted name, path) of every module of the appliance package."""
    found = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found.append((".".join(parts), path))
    return found


# --- the checker itself --------------------------------------------------------------------------


def test_the_checker_names_each_import_that_goes_up_or_sideways() -> None:
    source = "\n".join(
        [
            "from appliance.store.catalog import SqliteCatalog",
            "from .. import settings",
            "def later():",
            "    from appliance.screens.launch import run_screen",
            "    import importlib; importlib.import_module('appliance.mqtt.link')",
            "FACTORIES = {'printer': 'appliance.drivers.escpos_printer:EscposPrinter'}",
        ]
    )
    assert layer_violations(source, "appliance.core.fake") == [
        "appliance.core.fake:1 imports appliance.store.catalog"
        " (layer core may not import layer store)",
        "appliance.core.fake:1 imports appliance.store.catalog.SqliteCatalog"
        " (layer core may not import layer store)",
        "appliance.core.fake:2 imports appliance.settings"
        " (layer core may not import layer settings)",
        "appliance.core.fake:4 imports appliance.screens.launch"
        " (layer core may not import layer screens)",
        "appliance.core.fake:4 imports appliance.screens.launch.run_screen"
        " (layer core may not import layer screens)",
        "appliance.core.fake:5 imports appliance.mqtt.link (layer core may not import layer mqtt)",
        "appliance.core.fake:6 imports appliance.drivers.escpos_printer"
        " (layer core may not import layer drivers)",
    ]


def test_the_checker_would_catch_the_service_starting_the_screens_again() -> None:
    # The cut cycle: screens/app.py -> service -> screens/launch.py, lazily or by name.
    lazy = "def run(app):\n    from appliance.screens.launch import run_screen\n"
    by_name = "FRONT_ENDS = {'kiosk': 'appliance.screens.launch:run_screen'}\n"
    assert layer_violations(lazy, "appliance.service.main_loop") == [
        "appliance.service.main_loop:2 imports appliance.screens.launch"
        " (layer service may not import layer screens)",
        "appliance.service.main_loop:2 imports appliance.screens.launch.run_screen"
        " (layer service may not import layer screens)",
    ]
    assert layer_violations(by_name, "appliance.service.main_loop") == [
        "appliance.service.main_loop:1 imports appliance.screens.launch"
        " (layer service may not import layer screens)",
    ]


def test_siblings_import_each_other_only_along_a_named_edge() -> None:
    assert (
        layer_violations("from appliance.store.outbox import SalesOutbox", "appliance.mqtt.x") == []
    )
    assert layer_violations("from appliance.mqtt import topics", "appliance.drivers.x") == [
        "appliance.drivers.x:1 imports appliance.mqtt (layer drivers may not import layer mqtt)",
        "appliance.drivers.x:1 imports appliance.mqtt.topics"
        " (layer drivers may not import layer mqtt)",
    ]
    assert layer_violations("import appliance.drivers.worker", "appliance.store.x") == [
        "appliance.store.x:1 imports appliance.drivers.worker"
        " (layer store may not import layer drivers)",
    ]


def test_the_checker_allows_downward_imports_and_the_root_version() -> None:
    source = "\n".join(
        [
            "from appliance import __version__, errors",
            "from appliance.core.money import Money",
            "from appliance.settings import Settings",
            "from appliance.store.outbox import SalesOutbox",
            "from appliance.drivers.manager import DeviceManager",
            "from .lifecycle import running",
        ]
    )
    assert layer_violations(source, "appliance.service.fake") == []
    assert (
        layer_violations("from appliance.screens.launch import run_screen", "appliance.cli.x") == []
    )


def test_a_module_outside_the_table_is_named() -> None:
    assert layer_violations("", "appliance.plugins.x") == [
        "appliance.plugins.x is in no layer: give its package a row in the table"
    ]


# --- the appliance -------------------------------------------------------------------------------


def test_every_top_level_module_and_package_has_a_row() -> None:
    tops = {path.stem for path in PACKAGE_DIR.glob("*.py")} - {"__init__"}
    tops |= {path.parent.name for path in PACKAGE_DIR.glob("*/__init__.py")}
    tabled = set().union(*(row.packages for row in LAYERS)) - {"appliance"}
    assert tops == tabled


def test_every_module_imports_only_its_own_layer_and_below() -> None:
    found = []
    for name, path in appliance_modules():
        found.extend(layer_violations(path.read_text(), name, path.name == "__init__.py"))
    assert not found, "imports against the layer table:\n" + "\n".join(found)


def test_docs_list_every_layer_with_its_packages() -> None:
    rows = {}
    for line in LAYERS_DOC.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) >= 3 and cells[1].isdigit():
            rows[cells[0].strip("`")] = (int(cells[1]), set(re.findall(r"`(\w+)`", cells[2])))
    assert rows == {row.name: (row.rank, set(row.packages)) for row in LAYERS}
