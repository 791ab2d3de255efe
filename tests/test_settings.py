"""Settings: one TOML file validated into frozen values; errors name file, key and expectation."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.errors import ApplianceError, ConfigError
from appliance.settings import (
    CONFIG_ENV,
    DEFAULT_CONFIG_PATH,
    Settings,
    load_settings,
    resolve_config_path,
    simulated_settings,
)

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "appliance.toml"

GOOD = """\
[device]
id = "kiosk-berlin-03"
receipt_prefix = "B03"

[store]
name = "Späti am Eck"
currency = "EUR"
locale = "de_DE"
prices_include_tax = true
tax_rounding = "total"

[store.tax_classes]
standard = 1900
reduced = 700
zero = 0

[[store.variable_measure]]
prefix = "21"
item_digits = 5
measure = "price"

[[store.variable_measure]]
prefix = "28"
item_digits = 4
measure = "weight"
price_check_digit = true

[database]
path = "/tmp/appliance-test.db"

[logging]
level = "DEBUG"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "appliance.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_good_file_loads(tmp_path: Path) -> None:
    """Every section is read into typed values the core can use."""
    settings = load_settings(_write(tmp_path, GOOD))

    assert settings.device.id == "kiosk-berlin-03"
    assert settings.device.receipt_prefix == "B03"
    assert settings.store.name == "Späti am Eck"
    assert settings.store.locale == "de_DE"
    assert dict(settings.store.tax_classes) == {"standard": 1900, "reduced": 700, "zero": 0}
    policy = settings.store.tax_policy()
    assert policy.rate_of("reduced") == 700
    assert policy.rounding == "total"
    rules = settings.store.barcode_rules()
    assert [(r.prefix, r.item_digits, r.measure, r.price_check_digit) for r in rules] == [
        ("21", 5, "price", False),
        ("28", 4, "weight", True),
    ]
    assert settings.database.path == "/tmp/appliance-test.db"
    assert settings.logging.level == "DEBUG"


def test_only_the_device_id_is_required(tmp_path: Path) -> None:
    """Everything else has defaults."""
    settings = load_settings(_write(tmp_path, '[device]\nid = "till-1"\n'))

    assert settings.device.receipt_prefix == "R"
    assert settings.store.currency == "EUR"
    assert settings.store.prices_include_tax is True
    assert dict(settings.store.tax_classes) == {"standard": 2000, "reduced": 500, "zero": 0}
    assert settings.store.variable_measure == ()
    assert settings.logging.level == "INFO"


DEVICE = '[device]\nid = "till-1"\n'


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        pytest.param(
            DEVICE + '[store]\ncurency = "EUR"\n', "store.curency", "unknown key", id="typo"
        ),
        pytest.param(
            DEVICE + '[store]\nprices_include_tax = "yes"\n',
            "store.prices_include_tax",
            "bool",
            id="wrong-type",
        ),
        pytest.param(
            DEVICE + '[store]\ncurrency = "EURO"\n', "store.currency", "ISO 4217", id="currency"
        ),
        pytest.param(
            DEVICE + '[store]\ncurrency = "eur"\n', "store.currency", "ISO 4217", id="currency-case"
        ),
        pytest.param(DEVICE + '[store]\nlocale = "xx_YY"\n', "store.locale", "en_US", id="locale"),
        pytest.param(
            DEVICE + "[store.tax_classes]\nstandard = 20000\n",
            "store.tax_classes.standard",
            "10000",
            id="tax-rate",
        ),
        pytest.param(
            DEVICE + "[store.tax_classes]\nreduced = -5\n",
            "store.tax_classes.reduced",
            "10000",
            id="negative-tax-rate",
        ),
        pytest.param(
            DEVICE + "[store]\ntax_classes = {}\n",
            "store.tax_classes",
            "at least one",
            id="no-tax-classes",
        ),
        pytest.param(
            DEVICE + '[[store.variable_measure]]\nprefix = "31"\n',
            "store.variable_measure.0.prefix",
            "'31'",
            id="variable-measure-prefix",
        ),
        pytest.param(
            DEVICE + '[[store.variable_measure]]\nprefix = "21"\n'
            '[[store.variable_measure]]\nprefix = "21"\nitem_digits = 9\n',
            "store.variable_measure.1.item_digits",
            "value digits",
            id="variable-measure-item-digits",
        ),
        pytest.param(
            DEVICE + '[[store.variable_measure]]\nprefix = "21"\nitem_digits = 6\n'
            "price_check_digit = true\n",
            "store.variable_measure.0.price_check_digit",
            "4 or 5 value digits",
            id="variable-measure-check-digit",
        ),
        pytest.param(
            DEVICE + '[[store.variable_measure]]\nprefix = "21"\nmeasure = "volume"\n',
            "store.variable_measure.0.measure",
            "volume",
            id="variable-measure-kind",
        ),
        pytest.param(
            '[device]\nreceipt_prefix = "K1"\n', "device.id", "required", id="no-device-id"
        ),
        pytest.param('[store]\nname = "x"\n', "device", "required", id="no-device-table"),
        pytest.param('[device]\nid = "bad id!"\n', "device.id", "regex", id="device-id"),
        pytest.param(
            DEVICE + 'receipt_prefix = "k-1"\n', "device.receipt_prefix", "regex", id="prefix"
        ),
        pytest.param(DEVICE + '[logging]\nlevel = "LOUD"\n', "logging.level", "LOUD", id="level"),
        pytest.param(DEVICE + "[database]\npath = 3\n", "database.path", "str", id="db-path"),
        pytest.param(DEVICE + '[sync]\nhub = "x"\n', "sync", "unknown key", id="unknown-table"),
    ],
)
def test_bad_value_names_file_key_and_expectation(
    tmp_path: Path, text: str, key: str, expected: str
) -> None:
    """`<file>: <dotted.key>: <what was expected>`."""
    path = _write(tmp_path, text)

    with pytest.raises(ConfigError) as caught:
        load_settings(path)

    message = str(caught.value)
    assert message.startswith(f"{path}: {key}: "), message
    assert expected in message.removeprefix(f"{path}: {key}: "), message


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    """A syntax error says which file and that it is not TOML."""
    path = _write(tmp_path, '[device\nid = "x"\n')

    with pytest.raises(ConfigError, match="not valid TOML") as caught:
        load_settings(path)

    assert str(caught.value).startswith(f"{path}: ")


def test_missing_file(tmp_path: Path) -> None:
    """A file that is not there is a ConfigError naming it, not a FileNotFoundError."""
    path = tmp_path / "nowhere.toml"

    with pytest.raises(ConfigError, match="no such configuration file") as caught:
        load_settings(path)

    assert str(caught.value).startswith(f"{path}: ")


def test_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 are reported as unreadable, with the file's name."""
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[device]\nid = "caf\xe9"\n')

    with pytest.raises(ConfigError, match="cannot read") as caught:
        load_settings(path)

    assert str(caught.value).startswith(f"{path}: ")


def test_config_error_is_an_appliance_error() -> None:
    """The CLI turns every ApplianceError into one line and exit status 1."""
    assert issubclass(ConfigError, ApplianceError)


def test_resolve_config_path_precedence() -> None:
    """--config wins over $APPLIANCE_CONFIG, which wins over the default path."""
    env = {CONFIG_ENV: "/env/appliance.toml"}

    assert resolve_config_path("/opt/x.toml", env) == Path("/opt/x.toml")
    assert resolve_config_path(None, env) == Path("/env/appliance.toml")
    assert resolve_config_path(None, {}) == DEFAULT_CONFIG_PATH
    assert resolve_config_path(None, {CONFIG_ENV: ""}) == DEFAULT_CONFIG_PATH
    assert str(DEFAULT_CONFIG_PATH) == "/etc/appliance/appliance.toml"


def test_resolve_config_path_reads_the_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without an explicit mapping, os.environ is consulted."""
    monkeypatch.setenv(CONFIG_ENV, "/from/env.toml")
    assert resolve_config_path(None) == Path("/from/env.toml")
    assert resolve_config_path("cli.toml") == Path("cli.toml")
    monkeypatch.delenv(CONFIG_ENV)
    assert resolve_config_path(None) == DEFAULT_CONFIG_PATH


def test_settings_are_frozen(tmp_path: Path) -> None:
    """No part of the settings can be changed after validation."""
    settings = load_settings(_write(tmp_path, GOOD))

    with pytest.raises(AttributeError):
        settings.device = settings.device  # type: ignore[misc]
    with pytest.raises(AttributeError):
        settings.device.id = "other"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        settings.store.currency = "USD"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        settings.store.variable_measure[0].prefix = "22"  # type: ignore[misc]
    with pytest.raises(TypeError):
        settings.store.tax_classes["standard"] = 0  # type: ignore[index]
    assert settings.store.tax_classes["standard"] == 1900
    assert isinstance(settings.store.variable_measure, tuple)


def test_simulated_settings_keep_the_database_in_the_given_folder(tmp_path: Path) -> None:
    """The --simulate defaults: a demo device whose database lives in the state folder."""
    settings = simulated_settings(tmp_path)

    assert isinstance(settings, Settings)
    assert settings.device.id == "sim-0001"
    assert Path(settings.database.path) == tmp_path / "appliance.db"


def test_example_config_loads_and_validates() -> None:
    """The example the README tells operators to copy is itself valid."""
    settings = load_settings(EXAMPLE)

    assert settings.device.id
    settings.store.tax_policy()
    settings.store.barcode_rules()
