"""The settings tree: one TOML file, validated once into frozen values, passed in."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Literal

import msgspec
from babel import Locale, UnknownLocaleError

from appliance.core.barcode import VariableMeasureRule
from appliance.core.money import currency_exponent, is_known_currency
from appliance.core.tax import TaxPolicy
from appliance.device_settings import (
    EscposPrinterSettings,
    HardwareSettings,
    PrinterDrawerSettings,
    SerialScaleSettings,
)
from appliance.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/appliance/appliance.toml")
CONFIG_ENV = "APPLIANCE_CONFIG"

# Tax rates are basis points: 2000 is 20 %. Checked in StoreSettings so the error names the class.
MAX_BASIS_POINTS = 10_000
Identifier = Annotated[
    str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", description="an identifier")
]


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A settings table: unknown keys are errors, so typos never pass silently."""


class DeviceSettings(_Section, frozen=True):
    """Who this appliance is."""

    id: Identifier
    receipt_prefix: Annotated[str, msgspec.Meta(pattern=r"^[A-Z0-9]{1,8}$")] = "R"
    # "checked": a sale is flagged until the kernel says the clock is synchronised (NTP, or
    # an RTC read at boot). "trusted": the host keeps time by means the kernel cannot see.
    clock: Literal["checked", "trusted"] = "checked"


class VariableMeasureSettings(_Section, frozen=True):
    """One GS1 variable-measure barcode layout used by the store."""

    prefix: str
    item_digits: int = 5
    measure: Literal["price", "weight"] = "price"
    price_check_digit: bool = False

    def __post_init__(self) -> None:
        try:
            self.rule()
        except ValueError as err:
            raise ValueError(f"{self._culprit()}: {err}") from None

    def _culprit(self) -> str:
        """The key a refused layout is down to (the core checks the keys together)."""
        try:
            VariableMeasureRule(self.prefix, 5, "price")
        except ValueError:
            return "prefix"
        if self.price_check_digit:
            try:
                VariableMeasureRule(self.prefix, self.item_digits, self.measure)
            except ValueError:
                return "item_digits"
            return "price_check_digit"
        return "item_digits"

    def rule(self) -> VariableMeasureRule:
        """The core's rule for this layout."""
        return VariableMeasureRule(
            self.prefix, self.item_digits, self.measure, self.price_check_digit
        )


class StoreSettings(_Section, frozen=True):
    """The shop: money, language and tax rules."""

    name: str = "Store"
    currency: str = "EUR"
    locale: str = "en_US"
    prices_include_tax: bool = True
    tax_rounding: Literal["line", "total"] = "line"
    tax_classes: Mapping[str, int] = msgspec.field(
        default_factory=lambda: {"standard": 2000, "reduced": 500, "zero": 0}
    )
    variable_measure: tuple[VariableMeasureSettings, ...] = ()

    def __post_init__(self) -> None:
        if not is_known_currency(self.currency):
            raise ValueError(f"currency: expected an ISO 4217 code like EUR, got {self.currency!r}")
        try:
            Locale.parse(self.locale)
        except (UnknownLocaleError, ValueError):
            raise ValueError(f"locale: expected a locale like en_US, got {self.locale!r}") from None
        if not self.tax_classes:
            raise ValueError("tax_classes: at least one tax class is needed")
        for tax_class, rate in self.tax_classes.items():
            if not 0 <= rate <= MAX_BASIS_POINTS:
                raise ValueError(
                    f"tax_classes.{tax_class}: expected basis points from 0 to"
                    f" {MAX_BASIS_POINTS} (2000 is 20 %), got {rate}"
                )
        # Frozen all the way down: a read-only view, so no reader can change the rates.
        msgspec.structs.force_setattr(self, "tax_classes", MappingProxyType(dict(self.tax_classes)))
        prefixes = [v.prefix for v in self.variable_measure]
        if len(prefixes) != len(set(prefixes)):
            raise ValueError("variable_measure: each prefix may be listed once")

    def tax_policy(self) -> TaxPolicy:
        """The core's tax policy for this store."""
        return TaxPolicy.of(
            self.tax_classes,
            prices_include_tax=self.prices_include_tax,
            rounding=self.tax_rounding,
        )

    def barcode_rules(self) -> tuple[VariableMeasureRule, ...]:
        """The core's variable-measure rules for this store."""
        return tuple(v.rule() for v in self.variable_measure)


class DatabaseSettings(_Section, frozen=True):
    """Where the local store lives, and the room kept free on its partition."""

    path: str = "/var/lib/appliance/appliance.db"
    # Below this much free space no new sale starts (the one in progress finishes): it
    # covers a sale, its payment journal writes and a WAL checkpoint (up to ~32 MB).
    reserve_mb: Annotated[float, msgspec.Meta(ge=0, le=1_000_000)] = 64.0
    # How often the free space is looked at, off the commit path.
    storage_check_seconds: Annotated[float, msgspec.Meta(ge=0.1, le=600)] = 5.0

    @property
    def reserve_bytes(self) -> int:
        """The reserve in bytes."""
        return int(self.reserve_mb * 1024 * 1024)


class HubSettings(_Section, frozen=True):
    """The cloud hub link (MQTT v5); absent means the appliance runs stand-alone."""

    host: str
    port: Annotated[int, msgspec.Meta(ge=1, le=65_535)] = 8883
    # mTLS: the device id the hub sees is the CN of `cert`, not anything we claim.
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    fleet_public_key: str = ""  # Ed25519 key that signs fleet commands (PEM file)
    # Ed25519 key that signs release bundles (PEM file); a different key from the fleet's.
    # Without it no update command is taken.
    release_public_key: str = ""
    telemetry_seconds: Annotated[float, msgspec.Meta(ge=5, le=3600)] = 60.0
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=5000)] = 200

    def __post_init__(self) -> None:
        tls = (self.ca_file, self.cert_file, self.key_file)
        if any(tls) and not all(tls):
            raise ValueError("ca_file: TLS needs ca_file, cert_file and key_file together")


class UpdateSettings(_Section, frozen=True):
    """Software updates: the slots, the health gate's time, and when a reboot is welcome.

    `slots`: "pi" (the Raspberry Pi firmware's A/B boot), "directory:/path" (slot files on
    a host, run under appliance.update.host_firmware), or "" (no updates taken).
    `window`: local "HH:MM-HH:MM" in which an update reboots (sales aside); "" means any
    time the kiosk has been idle `idle_s` seconds.
    `download_kib_s`: the download's pace (0: as fast as it goes).
    """

    slots: str = ""
    gate_timeout_s: Annotated[float, msgspec.Meta(ge=10, le=3600)] = 300.0
    idle_s: Annotated[float, msgspec.Meta(ge=0, le=86_400)] = 60.0
    window: str = ""
    # Idle I/O class and nice 19 yield to selling, but decompressing and hashing still take
    # a core while they run; a steady pace keeps a scan from landing on a burst.
    download_kib_s: Annotated[int, msgspec.Meta(ge=0, le=1_048_576)] = 2048

    def __post_init__(self) -> None:
        if self.slots not in ("", "pi") and not (
            self.slots.startswith("directory:") and len(self.slots) > len("directory:")
        ):
            raise ValueError(f'slots: expected "pi", "directory:/path" or "", got {self.slots!r}')
        if self.window:
            start, _, end = self.window.partition("-")
            if not (_HH_MM.match(start) and _HH_MM.match(end)) or start == end:
                raise ValueError(
                    f"window: expected local times like 02:00-04:00, got {self.window!r}"
                )


class BaggingSettings(_Section, frozen=True):
    """The bagging-area check: a second scale under the bags (a serial_scale, role "bagging").

    Off by default: many stores use none. "log_only" logs and counts what it sees and never
    stops a customer; "enforce" pauses the sale and calls for help. The store's tolerance
    is the larger of `tolerance_grams` and `tolerance_percent` of the expected weight; a
    product may carry its own (bag_tolerance). The customer is reminded after
    `prompt_seconds` to bag a scanned item, and staff are called after `help_seconds`.
    """

    mode: Literal["off", "log_only", "enforce"] = "off"
    tolerance_grams: Annotated[int, msgspec.Meta(ge=0, le=5_000)] = 20
    tolerance_percent: Annotated[int, msgspec.Meta(ge=0, le=100)] = 10
    prompt_seconds: Annotated[float, msgspec.Meta(ge=1, le=600)] = 8.0
    help_seconds: Annotated[float, msgspec.Meta(ge=2, le=3600)] = 30.0
    # How long a weight nothing explains must last to be an alert (a bag still settling).
    alert_seconds: Annotated[float, msgspec.Meta(ge=0, le=60)] = 2.0

    def __post_init__(self) -> None:
        if self.help_seconds <= self.prompt_seconds:
            raise ValueError(
                "help_seconds: must be longer than prompt_seconds (the customer is reminded"
                f" before staff are called), got {self.help_seconds:g} <= {self.prompt_seconds:g}"
            )


class LoggingSettings(_Section, frozen=True):
    """How much the appliance tells the journal."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


PaymentMethod = Literal["card", "cash", "stored_value"]


class ScreenSettings(_Section, frozen=True):
    """The checkout screen: who uses it, how it looks, when it gives up on a customer."""

    mode: Literal["kiosk", "staff"] = "kiosk"  # self-checkout, or a staffed till
    width: Annotated[int, msgspec.Meta(ge=320, le=7680)] = 800
    height: Annotated[int, msgspec.Meta(ge=320, le=7680)] = 480
    fullscreen: bool = False
    languages: tuple[str, ...] = ("en", "de")
    payment_methods: tuple[PaymentMethod, ...] = ("card", "stored_value", "cash")
    idle_seconds: Annotated[float, msgspec.Meta(ge=5, le=3600)] = 60.0
    still_there_seconds: Annotated[float, msgspec.Meta(ge=3, le=300)] = 20.0
    thanks_seconds: Annotated[float, msgspec.Meta(ge=1, le=60)] = 6.0
    high_contrast: bool = False
    large_text: bool = False
    # The beep on a scan the cart takes and the low tone on one it refuses, from 0 to 1 of
    # full volume; 0 turns them off (a staffed till whose hand scanner beeps by itself).
    scan_sound_volume: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.5
    # A cashier may give up to this cart discount alone; above it a supervisor approves.
    cashier_discount_percent: Annotated[int, msgspec.Meta(ge=0, le=100)] = 10
    # The e-receipt QR code's URL: "{id}", "{receipt}" and "{token}" (the sale's secret link
    # token, e.g. "https://hub.example/r/{token}") are filled in; empty puts the receipt in it.
    e_receipt_url: str = ""

    def __post_init__(self) -> None:
        if not self.languages:
            raise ValueError("languages: at least one language is needed")
        for code in self.languages:
            try:
                Locale.parse(code)
            except (ValueError, UnknownLocaleError):
                raise ValueError(f"languages: {code!r} is not a known locale") from None
        if not self.payment_methods:
            raise ValueError("payment_methods: at least one payment method is needed")


class PaymentSettings(_Section, frozen=True):
    """Card payments the terminal approved offline (or deferred) and uploads later.

    Such a payment is a promise the bank has not seen yet: while the terminal holds
    approvals it has not submitted, card is offered only within these limits, as Square,
    Shopify and Stripe Terminal offer. Amounts are minor units of the store's currency.

    - `offline_max_total`: once the offline approvals not yet submitted add up to this
      much, card is not offered until the terminal submits them (its End-of-Day);
    - `offline_max_age_hours`: once the oldest of them is this old, the same;
    - `offline_max_per_payment`: the terminal decides by itself whether it goes offline,
      so the appliance cannot refuse one payment in advance. An offline approval above
      this cap stands (the card is charged), is logged as over the cap and counts
      towards the total like any other.

    0 means offline approvals are not accepted: with a total or an age of 0, a single
    offline approval stops card until it is submitted; with a per-payment cap of 0,
    every offline approval is flagged as over the cap.
    """

    offline_max_per_payment: Annotated[int, msgspec.Meta(ge=0)] = 5_000
    offline_max_total: Annotated[int, msgspec.Meta(ge=0)] = 25_000
    offline_max_age_hours: Annotated[float, msgspec.Meta(ge=0, le=24 * 90)] = 24.0


class StoredValueSettings(_Section, frozen=True):
    """Stored-value cards whose balance the hub holds (used only with a [hub] table).

    - `hub_timeout_s`: how long a payment waits for the hub's answer before the kiosk
      decides offline;
    - `offline_limit`: what one card may pay here per day (minor units, the device's
      local date) while the hub cannot answer, and never more than its last known
      balance less what it paid offline since; 0: stored value only while the hub answers.
    """

    hub_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=60)] = 5.0
    offline_limit: Annotated[int, msgspec.Meta(ge=0)] = 2_000


# Notes and coins in minor units, largest first, for the currencies a pop-up till meets most.
DENOMINATIONS: Mapping[str, tuple[int, ...]] = MappingProxyType(
    {
        "EUR": (50000, 20000, 10000, 5000, 2000, 1000, 500, 200, 100, 50, 20, 10, 5, 2, 1),
        "CHF": (100000, 20000, 10000, 5000, 2000, 1000, 500, 200, 100, 50, 20, 10, 5),
        "USD": (10000, 5000, 2000, 1000, 500, 200, 100, 50, 25, 10, 5, 1),
        "GBP": (5000, 2000, 1000, 500, 200, 100, 50, 20, 10, 5, 2, 1),
    }
)
# Cash is rounded where the smallest coin is larger than the minor unit (CHF: 0.05).
CASH_ROUNDING: Mapping[str, int] = MappingProxyType({"CHF": 5})
_HH_MM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


def default_denominations(currency: str, exponent: int) -> tuple[int, ...]:
    """The notes and coins of `currency`; for one not listed, 1-2-5 steps up to 500 major units."""
    if currency in DENOMINATIONS:
        return DENOMINATIONS[currency]
    steps = [m * 10**k for k in range(exponent + 3) for m in (1, 2, 5)]
    return tuple(sorted(steps, reverse=True))


class TillSettings(_Section, frozen=True):
    """The cash till: notes and coins, cash rounding, sign-off and the kiosk's shift hours.

    Amounts are minor units of the store's currency. `denominations` and `cash_rounding`
    left out take the currency's (Settings fills them in): EUR, CHF, USD and GBP are
    known; cash is rounded to 0.05 in CHF and not at all elsewhere (0 = no rounding).
    """

    denominations: tuple[Annotated[int, msgspec.Meta(gt=0)], ...] = ()
    cash_rounding: Annotated[int, msgspec.Meta(ge=0, le=100_000)] | None = None
    # A counted close that differs from the expected cash by more needs a supervisor.
    signoff_threshold: Annotated[int, msgspec.Meta(ge=0)] = 500
    # A kiosk's shift opens and closes at these local times ("HH:MM"); "" leaves both to
    # a supervisor. A window may run past midnight (open 18:00, close 02:00).
    kiosk_shift_open: str = ""
    kiosk_shift_close: str = ""

    def __post_init__(self) -> None:
        found = self.denominations
        if len(set(found)) != len(found) or list(found) != sorted(found, reverse=True):
            raise ValueError(
                "denominations: list each note and coin once, largest first"
                f" (minor units, e.g. [500, 200, 100]), got {list(found)}"
            )
        for key in ("kiosk_shift_open", "kiosk_shift_close"):
            value = getattr(self, key)
            if value and not _HH_MM.match(value):
                raise ValueError(f"{key}: expected a local time like 07:30, got {value!r}")
        if bool(self.kiosk_shift_open) != bool(self.kiosk_shift_close):
            raise ValueError(
                "kiosk_shift_open: set kiosk_shift_open and kiosk_shift_close together,"
                " or neither (a supervisor opens and closes the shift)"
            )
        if self.kiosk_shift_open and self.kiosk_shift_open == self.kiosk_shift_close:
            raise ValueError("kiosk_shift_close: must differ from kiosk_shift_open")

    @property
    def rounding_increment(self) -> int:
        """The cash rounding increment in minor units (0: none)."""
        return self.cash_rounding or 0

    @property
    def kiosk_schedule(self) -> tuple[str, str] | None:
        """(open, close) "HH:MM" local times, or None when a supervisor opens and closes."""
        if not self.kiosk_shift_open:
            return None
        return self.kiosk_shift_open, self.kiosk_shift_close

    def for_currency(self, currency: str) -> TillSettings:
        """These settings with what was left out filled in for `currency`."""
        denominations = self.denominations or default_denominations(
            currency, currency_exponent(currency)
        )
        rounding = (
            CASH_ROUNDING.get(currency, 0) if self.cash_rounding is None else (self.cash_rounding)
        )
        if rounding > 1 and denominations[-1] > rounding:
            raise ValueError(
                f"cash_rounding: {rounding} is smaller than the smallest coin"
                f" ({denominations[-1]}): the cash could not be paid"
            )
        return msgspec.structs.replace(self, denominations=denominations, cash_rounding=rounding)


class Settings(_Section, frozen=True):
    """The whole configuration."""

    device: DeviceSettings
    store: StoreSettings = msgspec.field(default_factory=StoreSettings)
    database: DatabaseSettings = msgspec.field(default_factory=DatabaseSettings)
    logging: LoggingSettings = msgspec.field(default_factory=LoggingSettings)
    hub: HubSettings | None = None
    screen: ScreenSettings = msgspec.field(default_factory=ScreenSettings)
    payments: PaymentSettings = msgspec.field(default_factory=PaymentSettings)
    stored_value: StoredValueSettings = msgspec.field(default_factory=StoredValueSettings)
    till: TillSettings = msgspec.field(default_factory=TillSettings)
    update: UpdateSettings = msgspec.field(default_factory=UpdateSettings)
    bagging: BaggingSettings = msgspec.field(default_factory=BaggingSettings)
    devices: dict[Identifier, HardwareSettings] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            till = self.till.for_currency(self.store.currency)
        except ValueError as err:
            raise ValueError(f"till.{err}") from None
        msgspec.structs.force_setattr(self, "till", till)
        bagging_scales = [
            name
            for name, device in self.devices.items()
            if isinstance(device, SerialScaleSettings) and device.role == "bagging"
        ]
        if len(bagging_scales) > 1:
            raise ValueError(
                f'devices: {" and ".join(bagging_scales)} both have role = "bagging";'
                " a kiosk has one bagging area"
            )
        for name, device in self.devices.items():
            if isinstance(device, PrinterDrawerSettings):
                target = self.devices.get(device.printer)
                if not isinstance(target, EscposPrinterSettings):
                    raise ValueError(
                        f"devices: {name}.printer names {device.printer!r},"
                        " which is not an escpos_printer device"
                    )


def resolve_config_path(option: str | None, environ: Mapping[str, str] | None = None) -> Path:
    """The file to read: --config, else $APPLIANCE_CONFIG, else /etc/appliance/appliance.toml."""
    env = os.environ if environ is None else environ
    return Path(option or env.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH)


def load_settings(path: Path) -> Settings:
    """Read and validate a TOML file; ConfigError names the file, the key and what was expected."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read: {err}") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from err
    return parse_settings(data, source=str(path))


def parse_settings(data: Mapping[str, object], source: str = "settings") -> Settings:
    """Validate an already-parsed mapping into Settings."""
    devices = data.get("devices")
    if isinstance(devices, Mapping):
        # One device at a time, because msgspec does not name the table a bad key sits in.
        for name, table in devices.items():
            try:
                msgspec.convert(table, HardwareSettings)
            except msgspec.ValidationError as err:
                raise ConfigError(f"{source}: {_explain(str(err), f'devices.{name}')}") from err
    try:
        return msgspec.convert(data, Settings)
    except msgspec.ValidationError as err:
        raise ConfigError(f"{source}: {_explain(str(err))}") from err


def simulated_settings(data_dir: Path) -> Settings:
    """Defaults for `--simulate` without a configuration file: a demo store in `data_dir`."""
    return parse_settings(
        {
            "device": {"id": "sim-0001", "receipt_prefix": "SIM"},
            "database": {"path": str(data_dir / "appliance.db")},
        },
        source="simulated defaults",
    )


_LOCATED = re.compile(r"^(?P<message>.*) - at `\$(?P<path>[^`]*)`$")
_FIELD_FIRST = re.compile(r"^(?P<field>[a-z_]+(?:\.[^\s:]+)*): (?P<rest>.*)$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<field>[^`]+)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")


def _explain(raw: str, within: str = "") -> str:
    """Turn msgspec's message into `dotted.key: what was expected`."""
    message, path = raw, ""
    if located := _LOCATED.match(raw):
        message, path = located["message"], located["path"]
    path = re.sub(r"\[(\d+)\]", r".\1", path).replace("[...]", ".*").lstrip(".")
    path = _join(within, path) if within and path else within or path
    for pattern, template in (
        (_UNKNOWN, "unknown key (check its spelling)"),
        (_MISSING, "required key is missing"),
    ):
        if found := pattern.match(message):
            return f"{_join(path, found['field'])}: {template}"
    if found := _FIELD_FIRST.match(message):
        return f"{_join(path, found['field'])}: {found['rest']}"
    return f"{path or '(top level)'}: {message}"


def _join(path: str, field: str) -> str:
    return f"{path}.{field}" if path else field
