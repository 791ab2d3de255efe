"""Ed25519 command signatures: canonical bytes, tampering, wire round trips, the signed domain."""

from __future__ import annotations

import base64
import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.errors import CommandSignatureError
from appliance.mqtt.payloads import MAX_SAFE, Command, decode, encode
from appliance.mqtt.signing import (
    BadSignatureError,
    FleetKeyError,
    UnsignedCommandError,
    canonical_bytes,
    load_public_key,
    public_key_from_pem,
    sign_command,
    verify_command,
)
from hub.fleet_keys import PRIVATE_KEY, generate_fleet_keys, load_fleet_key, new_command

KEY = Ed25519PrivateKey.generate()
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def signed(**args: Any) -> Command:
    return new_command(
        KEY, "kiosk-01", "collect_logs", args, expires_in=timedelta(minutes=5), now=NOW
    )


def test_a_signed_command_verifies_with_the_fleet_public_key() -> None:
    command = signed(lines=200)
    verify_command(command, KEY.public_key())
    assert len(base64.b64decode(command.signature)) == 64
    assert command.expires_at == "2026-03-01T12:05:00+00:00"


def test_the_canonical_bytes_are_sorted_json_without_the_signature() -> None:
    command = signed(z=1, a={"y": 2, "b": 3})
    data = canonical_bytes(command)
    assert data == canonical_bytes(msgspec.structs.replace(command, signature=""))
    parsed = json.loads(data)
    assert parsed["signature"] == ""
    assert list(parsed) == sorted(parsed)
    assert list(parsed["args"]) == ["a", "z"] and list(parsed["args"]["a"]) == ["b", "y"]


def test_the_signature_survives_the_wire_in_any_key_order() -> None:
    command = signed(lines=5, note="ünïcode ✓", nested={"b": [1, "2.5", None], "a": True})
    shuffled = dict(reversed(list(json.loads(encode(command)).items())))
    received = decode(json.dumps(shuffled, ensure_ascii=True).encode(), Command)
    verify_command(received, KEY.public_key())


def test_an_unsigned_command_is_refused_as_unsigned() -> None:
    with pytest.raises(UnsignedCommandError, match="unsigned"):
        verify_command(msgspec.structs.replace(signed(), signature=""), KEY.public_key())


@pytest.mark.parametrize(
    "change",
    [
        {"device": "kiosk-02"},
        {"name": "reboot"},
        {"args": {"lines": 201}},
        {"expires_at": "2027-03-01T12:05:00+00:00"},
        {"id": "another"},
        {"v": 2},
    ],
)
def test_changing_any_signed_field_breaks_the_signature(change: dict[str, Any]) -> None:
    tampered = msgspec.structs.replace(signed(lines=200), **change)
    with pytest.raises(BadSignatureError, match="bad signature"):
        verify_command(tampered, KEY.public_key())


@pytest.mark.parametrize("signature", ["not base64!", "AAAA", base64.b64encode(b"x" * 64).decode()])
def test_a_malformed_or_foreign_signature_is_bad(signature: str) -> None:
    with pytest.raises(BadSignatureError):
        verify_command(msgspec.structs.replace(signed(), signature=signature), KEY.public_key())


def test_another_key_signature_is_bad() -> None:
    other = Ed25519PrivateKey.generate()
    with pytest.raises(BadSignatureError):
        verify_command(sign_command(signed(), other), KEY.public_key())


ascii_keys = st.text(st.characters(max_codepoint=127), max_size=8)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-MAX_SAFE, max_value=MAX_SAFE) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ascii_keys, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None)
@given(args=st.dictionaries(ascii_keys, json_values, max_size=5))
def test_any_json_args_verify_after_an_encode_decode_round_trip(args: dict[str, Any]) -> None:
    command = sign_command(
        Command(id="c", device="d", name="set_config", args=args, issued_at="i", expires_at="e"),
        KEY,
    )
    verify_command(decode(encode(command), Command), KEY.public_key())


OUTSIDE_THE_DOMAIN = [
    pytest.param({"volume": 0.5}, "args.volume is a float (0.5)", id="float"),
    pytest.param({"n": 1.0}, "args.n is a float (1.0)", id="whole-float"),
    pytest.param({"big": 1e300}, "args.big is a float (1e+300)", id="huge-float"),
    pytest.param(
        {"n": MAX_SAFE + 1}, f"args.n is an integer beyond ±{MAX_SAFE} ({MAX_SAFE + 1})", id="int"
    ),
    pytest.param({"n": -(2**70)}, f"args.n is an integer beyond ±{MAX_SAFE}", id="negative-int"),
    pytest.param(
        {"deep": {"list": [1, {"x": 2.5}]}}, "args.deep.list[1].x is a float (2.5)", id="nested"
    ),
    pytest.param({"prix": {"café": 1}}, "args.prix has a key that is not ASCII: 'café'", id="key"),
    pytest.param({"größe": 1}, "args has a key that is not ASCII: 'größe'", id="top-key"),
    pytest.param({"text": "\ud800"}, "args.text holds a lone surrogate", id="surrogate"),
]


@pytest.mark.parametrize(("args", "named"), OUTSIDE_THE_DOMAIN)
def test_the_hub_refuses_to_sign_args_outside_the_signed_domain(
    args: dict[str, Any], named: str
) -> None:
    with pytest.raises(CommandSignatureError, match="cannot sign the command") as refused:
        signed(**args)
    assert named in str(refused.value)
    assert "no floats" in str(refused.value)


@pytest.mark.parametrize(("args", "named"), OUTSIDE_THE_DOMAIN[:-1])  # JSON cannot carry the last
def test_a_device_refuses_a_command_outside_the_signed_domain_as_not_canonical(
    args: dict[str, Any], named: str
) -> None:
    # Signed by another implementation over its own rendering of the float: a
    # well-formed signature over bytes this side cannot rebuild the same way.
    unsigned = Command(
        id="c", device="kiosk-01", name="set_config", args=args, issued_at="i", expires_at="e"
    )
    body = msgspec.json.encode(unsigned, order="sorted")
    wire = msgspec.structs.replace(unsigned, signature=base64.b64encode(KEY.sign(body)).decode())
    received = decode(encode(wire), Command)
    with pytest.raises(BadSignatureError, match="not canonical") as refused:
        verify_command(received, KEY.public_key())
    assert named in str(refused.value)


def test_the_fleet_command_cli_refuses_a_float_arg_with_the_reason(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from hub.cli_command import command_command

    private, _ = generate_fleet_keys(tmp_path)
    result = CliRunner().invoke(
        command_command,
        ["kiosk-01", "set_config", "--arg", "volume=1.5", "--fleet-key", str(private)],
    )
    assert result.exit_code == 1
    assert "cannot sign the command: args.volume is a float (1.5)" in result.output
    assert "Traceback" not in result.output


def test_generate_fleet_keys_writes_a_private_key_only_its_owner_reads(tmp_path: Path) -> None:
    private, public = generate_fleet_keys(tmp_path / "fleet")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    key = load_fleet_key(private)
    command = new_command(key, "kiosk-01", "lock", expires_in=timedelta(minutes=1))
    verify_command(command, load_public_key(public))


def test_generate_fleet_keys_refuses_to_replace_a_key_unless_forced(tmp_path: Path) -> None:
    private, _ = generate_fleet_keys(tmp_path)
    before = private.read_bytes()
    with pytest.raises(FleetKeyError, match=r"orphan every provisioned appliance.*--force"):
        generate_fleet_keys(tmp_path)
    assert private.read_bytes() == before
    generate_fleet_keys(tmp_path, force=True)
    assert private.read_bytes() != before


def test_key_files_that_are_missing_or_not_ed25519_are_refused(tmp_path: Path) -> None:
    with pytest.raises(FleetKeyError, match="cannot read"):
        load_public_key(tmp_path / "missing.pub")
    with pytest.raises(FleetKeyError, match="cannot read"):
        load_fleet_key(tmp_path / PRIVATE_KEY)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    pem = ec_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(FleetKeyError, match="must be Ed25519"):
        public_key_from_pem(pem)
    (tmp_path / "ec.key").write_bytes(
        ec_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(FleetKeyError, match="must be Ed25519"):
        load_fleet_key(tmp_path / "ec.key")
    (tmp_path / "junk.pub").write_text("hello")
    with pytest.raises(FleetKeyError, match="not a PEM public key"):
        load_public_key(tmp_path / "junk.pub")


def test_the_keygen_cli_writes_the_pair_once(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from hub.cli_command import keygen_command

    first = CliRunner().invoke(keygen_command, [str(tmp_path)])
    assert first.exit_code == 0, first.output
    assert "fleet_public_key" in first.output
    again = CliRunner().invoke(keygen_command, [str(tmp_path)])
    assert again.exit_code == 1
    assert "--force replaces it" in again.output
