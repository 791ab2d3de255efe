"""`appliance status`: a read-only snapshot for people (--json for scripts)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appliance.core.offline_limits import TOTAL_REACHED
from appliance.core.payment import PaymentRequest, PaymentResult
from appliance.core.tender import Tender
from appliance.service.demo import demo_products
from appliance.settings import DEFAULT_CONFIG_PATH, Settings
from tests.cli.conftest import DEVICE_ID, Cli, make_newer_schema, opened


def _sell_twice(settings: Settings) -> None:
    """Seed the demo catalog and commit two sales through the checkout."""
    with opened(settings) as app:
        app.checkout.scan("COFFEE-250")
        app.checkout.pay([Tender("cash", 499, tendered=500)])
        app.checkout.scan("4006381333931")  # the coffee's EAN-13
        app.checkout.scan("WATER-05")
        app.checkout.pay([Tender("card", 628)])


def test_json_counts_products_and_documents(appliance: Cli, settings: Settings) -> None:
    """Product, barcode, document and outbox counts after two sales; the last sale shown."""
    _sell_twice(settings)

    result = appliance("status", "--json")

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["device_id"] == DEVICE_ID
    assert report["config"] == str(appliance.config)
    demo = demo_products(settings.store)
    barcodes = sum(len(p.barcodes) for p in demo)
    assert report["catalog"] == {"products": len(demo), "barcodes": barcodes}
    assert report["documents"]["count"] == 2
    last = report["documents"]["last"]
    assert last["receipt_number"] == "T7-000002"
    assert last["kind"] == "sale"
    assert "6,28" in last["total"]  # formatted for the store's locale, de_DE
    assert report["outbox"]["depth"] == 2
    assert report["database"]["schema_current"] is True
    assert report["database"]["path"] == settings.database.path


def test_human_output_names_the_device(appliance: Cli, settings: Settings) -> None:
    """The table shows the device id and the counts."""
    _sell_twice(settings)

    result = appliance("status")

    assert result.exit_code == 0, result.output
    assert DEVICE_ID in result.stdout
    assert "catalog.products" in result.stdout
    with pytest.raises(json.JSONDecodeError):
        json.loads(result.stdout)


def test_before_any_database_reports_and_creates_nothing(appliance: Cli, db_path: Path) -> None:
    """No database yet: status says so and does not create one."""
    result = appliance("status", "--json")

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["database"] == {"path": str(db_path), "exists": False}
    assert "catalog" not in report
    assert not db_path.exists()


def test_newer_schema_is_refused(appliance: Cli, db_path: Path) -> None:
    """Status will not interpret a database written by newer software."""
    make_newer_schema(db_path)

    result = appliance("status", "--json")

    assert result.exit_code == 1
    assert "schema version 99" in result.output


def test_config_from_environment(
    appliance: Cli, config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --config, $APPLIANCE_CONFIG names the file."""
    monkeypatch.setenv("APPLIANCE_CONFIG", str(config))

    result = appliance("status", "--json", config=False)

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["device_id"] == DEVICE_ID
    assert report["config"] == str(config)


def test_option_wins_over_environment(
    appliance: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--config is used even when $APPLIANCE_CONFIG names another (broken) file."""
    broken = tmp_path / "broken.toml"
    broken.write_text("[device\n", encoding="utf-8")
    monkeypatch.setenv("APPLIANCE_CONFIG", str(broken))

    assert appliance("status", "--json").exit_code == 0
    result = appliance("status", "--json", config=False)
    assert result.exit_code == 1
    assert str(broken) in result.output


def test_missing_config_file_is_an_error(appliance: Cli, tmp_path: Path) -> None:
    """An explicit --config that does not exist is refused, even with --simulate."""
    missing = tmp_path / "nope.toml"
    for extra in ((), ("--simulate",)):
        result = appliance("status", *extra, "--config", str(missing), config=False)

        assert result.exit_code == 1
        assert f"{missing}: no such configuration file" in result.output


@pytest.mark.usefixtures("no_machine_config")
def test_simulate_without_config_uses_the_state_dir(appliance: Cli, clean_env: Path) -> None:
    """--simulate and no config file anywhere: the demo device in $APPLIANCE_STATE_DIR."""
    result = appliance("status", "--json", "--simulate", config=False)

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["device_id"] == "sim-0001"
    assert report["config"] is None
    assert report["database"]["path"] == str(clean_env / "appliance.db")


@pytest.mark.usefixtures("no_machine_config")
def test_appliance_simulate_in_the_environment_is_the_flag(
    appliance: Cli, clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """APPLIANCE_SIMULATE=1 (a unit's Environment=, a kernel's systemd.setenv=) is --simulate."""
    monkeypatch.setenv("APPLIANCE_SIMULATE", "1")
    result = appliance("status", "--json", config=False)

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["device_id"] == "sim-0001"


@pytest.mark.usefixtures("no_machine_config")
def test_without_simulate_the_default_config_is_required(appliance: Cli) -> None:
    """Without --simulate, no config file is an error naming the default path."""
    result = appliance("status", config=False)

    assert result.exit_code == 1
    assert str(DEFAULT_CONFIG_PATH) in result.output


def test_offline_card_payments_and_their_limits_are_shown(
    appliance: Cli, settings: Settings
) -> None:
    """payments.offline: what the terminal approved offline and has not submitted, the
    limits, and why card is off once the total is reached."""
    with opened(settings) as app:
        for reference, amount, offline in (("t7-a", 20_000, True), ("t7-b", 6_000, True)):
            request = PaymentRequest(amount, "EUR", reference)
            app.stores.payments.begin(request, None)
            result = PaymentResult("approved", reference, amount=amount, offline=offline)
            app.stores.payments.answered(request, result)

    report = json.loads(appliance("status", "--json").stdout)

    offline = report["payments"]["offline"]
    assert offline["count"] == 2
    assert offline["amount_minor"] == 26_000
    assert "260,00" in offline["amount"]  # de_DE
    assert 0 <= offline["oldest_age_seconds"] < 600
    assert offline["limits"]["max_age_hours"] == 24
    assert "250,00" in offline["limits"]["max_total"]
    assert offline["blocked"] == TOTAL_REACHED
    human = appliance("status")
    assert human.exit_code == 0, human.output
    assert "offline card payments" in human.stdout
    assert TOTAL_REACHED in " ".join(human.stdout.split())


def test_the_image_version_is_shown_when_the_appliance_runs_from_an_image(
    appliance: Cli, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from appliance.cli import status

    version_file = tmp_path / "appliance-image-version"
    monkeypatch.setattr(status, "IMAGE_VERSION_FILE", version_file)
    assert json.loads(appliance("status", "--json").stdout)["image"] is None  # a dev machine

    version_file.write_text("2026.12.1-3-gabc1234\n", encoding="utf-8")

    assert json.loads(appliance("status", "--json").stdout)["image"] == "2026.12.1-3-gabc1234"
    assert "2026.12.1-3-gabc1234" in appliance("status").stdout


def test_the_clock_and_the_sales_stamped_before_it_was_verified_are_shown(
    appliance: Cli, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from appliance.cli import status
    from appliance.service import assembly
    from appliance.service.clock_check import ClockCheck

    def unsynchronised(*, trusted: bool) -> ClockCheck:
        return ClockCheck(trusted=trusted, probe=lambda: False)

    monkeypatch.setattr(status, "kernel_clock_synchronised", lambda: False)
    monkeypatch.setattr(assembly, "ClockCheck", unsynchronised)
    _sell_twice(settings)  # both stamped before NTP set the clock

    report = json.loads(appliance("status", "--json").stdout)

    assert report["clock_synchronised"] is False
    assert report["documents"]["clock_unverified"] == 2
