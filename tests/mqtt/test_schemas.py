"""docs/schemas/ holds exactly the JSON Schemas generated from the payload structs."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner

from appliance.mqtt import payloads as p
from hub import schemas
from tests.mqtt.test_payloads import EXAMPLES


def test_the_checked_in_schemas_match_the_payload_structs() -> None:
    problems = schemas.drift(schemas.SCHEMA_DIR)
    assert not problems, (
        "docs/schemas/ is out of date with appliance/mqtt/payloads.py "
        f"(run `{schemas.REGENERATE}` and commit the result): " + "; ".join(problems)
    )


def test_there_is_one_schema_file_per_payload_struct() -> None:
    kinds = (*p.ALL_PAYLOADS, *p.DOCUMENT_SHAPES)
    assert set(schemas.render()) == {f"{kind.__name__}.json" for kind in kinds}


def test_generation_is_deterministic_sorted_indented_and_newline_terminated() -> None:
    first, second = schemas.render(), schemas.render()
    assert first == second
    for name, text in first.items():
        assert text.endswith("}\n"), name
        assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n", name


@pytest.mark.parametrize("kind", p.ALL_PAYLOADS, ids=lambda kind: kind.__name__)
def test_a_schema_describes_its_struct_and_an_encoded_example_fits_it(
    kind: type[p.Payload],
) -> None:
    schema = json.loads(schemas.render()[f"{kind.__name__}.json"])
    assert schema["$schema"] == schemas.DIALECT
    assert schema["title"] == kind.__name__
    assert schema["description"] == (kind.__doc__ or "").strip()
    assert schema["properties"]["v"] == {
        "type": "integer",
        "default": p.SCHEMA_VERSION,
        "minimum": 1,
        "maximum": p.SCHEMA_VERSION,
    }
    # No validator library here: check the shape that matters to a reader of the schema.
    encoded = json.loads(p.encode(EXAMPLES[kind]))
    assert set(encoded) == set(schema["properties"])
    assert set(schema.get("required", [])) <= set(encoded)
    files = schemas.render()
    for ref in _refs(schema):
        # A verbatim document refers to its shape's own file beside this one.
        assert ref in files or ref.removeprefix("#/$defs/") in schema["$defs"], ref


def test_the_sale_document_shape_fits_every_kind_the_device_commits() -> None:
    from appliance.core.sale import draft_void
    from appliance.store.documents import encode_document
    from tests.core.test_receipt import NOW, _sale

    sale = _sale()
    void = draft_void(sale, device_id="k1", now=NOW, staff="ana", reason="wrong item")
    schema = json.loads(schemas.render()["SaleDocument.json"])
    for document in (sale, void.seal(8, "K01-000008")):
        data = encode_document(document)
        assert set(schema["required"]) <= set(json.loads(data))
        shaped = msgspec.json.decode(data, type=p.SaleDocument)
        assert [line.sku for line in shaped.lines] == [line.sku for line in document.lines]


def test_drift_names_missing_changed_and_extra_files(tmp_path: Path) -> None:
    target = tmp_path / "schemas"
    schemas.write(target)
    assert schemas.drift(target) == []
    (target / "SalesAck.json").unlink()
    (target / "HubState.json").write_text("{}\n")
    (target / "Retired.json").write_text("{}\n")
    assert schemas.drift(target) == [
        "missing: SalesAck.json",
        "not generated from any payload: Retired.json",
        "differs: HubState.json",
    ]
    schemas.write(target)
    assert schemas.drift(target) == []
    assert not (target / "Retired.json").exists()


def test_the_command_rewrites_and_check_fails_with_the_fix(tmp_path: Path) -> None:
    runner = CliRunner()
    target = tmp_path / "schemas"
    failed = runner.invoke(schemas.main, [str(target), "--check"])
    assert failed.exit_code == 1
    assert "run python -m hub.schemas" in failed.output
    assert "missing: Command.json" in failed.output
    written = runner.invoke(schemas.main, [str(target)])
    assert written.exit_code == 0, written.output
    assert runner.invoke(schemas.main, [str(target), "--check"]).exit_code == 0


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if "$ref" in node else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []
