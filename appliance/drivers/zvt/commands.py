"""What the ECR sends a ZVT terminal (PA00P015 chapter 2): one builder per command, as Apdus.

Pure functions of their arguments: no link, no state. A value a command cannot carry (a
password that is not six digits, an amount over twelve BCD digits, a currency not in the
table) is a ZvtError here, before anything reaches the wire.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum

from appliance.core.payment import PAYMENT_TYPES, PaymentType
from appliance.drivers.zvt.apdu import Apdu
from appliance.drivers.zvt.bmp import encode_bmp
from appliance.drivers.zvt.fields import encode_bcd
from appliance.drivers.zvt.tlv import encode_tlv
from appliance.errors import DeviceError, ZvtError


class Command(Enum):
    """A request the ECR sends, by its (CLASS, INSTR); the parser needs to know which it answers."""

    REGISTRATION = (0x06, 0x00)
    AUTHORIZATION = (0x06, 0x01)
    LOG_OFF = (0x06, 0x02)
    REPEAT_RECEIPT = (0x06, 0x20)
    REVERSAL = (0x06, 0x30)
    REFUND = (0x06, 0x31)
    END_OF_DAY = (0x06, 0x50)
    DIAGNOSIS = (0x06, 0x70)
    ABORT = (0x06, 0xB0)
    STATUS_ENQUIRY = (0x05, 0x01)

    @classmethod
    def of(cls, apdu: Apdu) -> Command:
        """The command an Apdu built here carries; ZvtError for anything else."""
        try:
            return cls(apdu.command)
        except ValueError:
            raise ZvtError(f"{apdu.cls:02X} {apdu.instr:02X} is not an ECR command") from None


# ISO 4217 numeric codes of the currencies ZVT terminals in our markets are set up for.
# (babel knows the alphabetic codes only.) The terminal takes the code as 2 BCD bytes.
CURRENCY_NUMERIC: dict[str, int] = {
    "EUR": 978,
    "CHF": 756,
    "GBP": 826,
    "USD": 840,
    "DKK": 208,
    "SEK": 752,
    "NOK": 578,
    "PLN": 985,
    "CZK": 203,
    "HUF": 348,
}
CURRENCY_ALPHA: dict[int, str] = {number: code for code, number in CURRENCY_NUMERIC.items()}

# Registration config byte (PA00P015 2.1): which side prints, and who controls the PT.
CONFIG_ECR_PRINTS_PAYMENT_RECEIPTS = 0x02
CONFIG_ECR_PRINTS_ADMIN_RECEIPTS = 0x04
CONFIG_INTERMEDIATE_STATUS = 0x08  # send 04 FF, which also keeps T4 alive
CONFIG_ECR_CONTROLS_PAYMENT = 0x10  # no amount input on the PT
CONFIG_ECR_CONTROLS_ADMIN = 0x20  # no administration started on the PT
CONFIG_ECR_PRINT_TYPE = 0x80  # receipts come as 06 D1 / 06 D3, not to be rebuilt by the ECR

# Payment-type (BMP 19), as PA00P015 defines it for Authorization. None of them tells a
# chip card from a contactless tap or a phone wallet: a wallet is a contactless card to the
# PT. So the byte cannot honour a narrower `allowed`; the PT decides, with BMP 19 left out.
PAYMENT_TYPE_PT_DECIDES = 0x40  # payment according to the PT's decision, excluding GeldKarte
PAYMENT_TYPE_GELDKARTE = 0x50
PAYMENT_TYPE_ONLINE_WITHOUT_PIN = 0x60
PAYMENT_TYPE_PIN = 0x70  # PIN payment, EMV included

# TLV tags of the Registration container.
TAG_PERMITTED_COMMANDS = 0x26  # list of ZVT commands the ECR accepts from the PT
TAG_COMMAND = 0x0A

MAX_AMOUNT = 10**12 - 1  # BMP 04: 6 BCD bytes, minor units


def currency_numeric(currency: str) -> int:
    """The ISO 4217 numeric code of an alphabetic one (EUR -> 978); DeviceError if unknown."""
    try:
        return CURRENCY_NUMERIC[currency]
    except KeyError:
        message = f"currency {currency!r} is not one a ZVT terminal is set up for"
        raise DeviceError(message) from None


def payment_type_for(allowed: Iterable[PaymentType]) -> int | None:
    """BMP 19 for the payment kinds a request allows: None lets the PT decide (all allowed).

    DeviceError when the request allows only some kinds: the terminal cannot restrict to them
    (see the table above), and refusing before sending is the only safe answer.
    """
    kinds = set(allowed)
    if kinds == set(PAYMENT_TYPES):
        return None
    refused = ", ".join(kind for kind in PAYMENT_TYPES if kind not in kinds)
    raise DeviceError(
        f"a ZVT terminal cannot refuse {refused}: it takes whatever card the customer presents"
    )


def config_byte(print_receipts: bool) -> int:
    """The Registration config byte: the ECR controls the PT; it prints when `print_receipts`."""
    value = CONFIG_INTERMEDIATE_STATUS | CONFIG_ECR_CONTROLS_PAYMENT | CONFIG_ECR_CONTROLS_ADMIN
    if print_receipts:
        value |= (
            CONFIG_ECR_PRINTS_PAYMENT_RECEIPTS
            | CONFIG_ECR_PRINTS_ADMIN_RECEIPTS
            | CONFIG_ECR_PRINT_TYPE
        )
    return value


def permitted_commands(*commands: tuple[int, int]) -> bytes:
    """TLV tag 26 listing PT commands the ECR takes, e.g. (0x06, 0xD3) to allow Print Text-Block."""
    entries = b"".join(encode_tlv(TAG_COMMAND, bytes(command)) for command in commands)
    return encode_tlv(TAG_PERMITTED_COMMANDS, entries)


def registration(
    password: str,
    config: int,
    currency_numeric: int,
    *,
    service_byte: int | None = None,
    tlv: bytes | None = None,
) -> Apdu:
    """06 00: `<password> <config-byte> <CC> [03 <service-byte>] [06 <TLV>]`."""
    # The currency follows the config byte bare, without a BMP id (unlike BMP 49 elsewhere).
    data = _password(password) + bytes((_byte(config),)) + _currency(currency_numeric)
    if service_byte is not None:
        data += encode_bmp(0x03, bytes((_byte(service_byte),)))
    if tlv is not None:
        data += encode_bmp(0x06, tlv)
    return Apdu(*Command.REGISTRATION.value, data)


def authorization(
    amount: int,
    currency_numeric: int,
    payment_type: int | None = None,
    *,
    tlv: bytes | None = None,
) -> Apdu:
    """06 01: amount (BMP 04, minor units), currency (BMP 49), payment type (BMP 19) if given."""
    data = _amount(amount) + encode_bmp(0x49, _currency(currency_numeric))
    if payment_type is not None:
        data += encode_bmp(0x19, bytes((_byte(payment_type),)))
    if tlv is not None:
        data += encode_bmp(0x06, tlv)
    return Apdu(*Command.AUTHORIZATION.value, data)


def reversal(password: str, receipt_number: int) -> Apdu:
    """06 30: undo today's payment with this receipt number (BMP 87)."""
    if not 0 <= receipt_number <= 9999:
        raise ZvtError(f"receipt number {receipt_number} is not 4 digits")
    data = _password(password) + encode_bmp(0x87, encode_bcd(receipt_number, 2))
    return Apdu(*Command.REVERSAL.value, data)


def refund(password: str, amount: int, currency_numeric: int) -> Apdu:
    """06 31: pay `amount` back to the card the customer presents."""
    data = _password(password) + _amount(amount) + encode_bmp(0x49, _currency(currency_numeric))
    return Apdu(*Command.REFUND.value, data)


def end_of_day(password: str) -> Apdu:
    """06 50: close the day and submit the terminal's payments."""
    return Apdu(*Command.END_OF_DAY.value, _password(password))


def abort() -> Apdu:
    """06 B0: ask the PT to abort the running command."""
    return Apdu(*Command.ABORT.value)


def log_off() -> Apdu:
    """06 02: end the registration; the PT resets its config byte to 86."""
    return Apdu(*Command.LOG_OFF.value)


def status_enquiry(password: str) -> Apdu:
    """05 01: the PT answers with its software version and terminal status."""
    return Apdu(*Command.STATUS_ENQUIRY.value, _password(password))


def repeat_receipt(password: str) -> Apdu:
    """06 20: the PT repeats the last transaction's Status-Information and receipt."""
    return Apdu(*Command.REPEAT_RECEIPT.value, _password(password))


def diagnosis(password: str | None = None) -> Apdu:
    """06 70: the PT checks its link to the host."""
    return Apdu(*Command.DIAGNOSIS.value, b"" if password is None else _password(password))


def _password(password: str) -> bytes:
    if len(password) != 6 or not password.isdigit() or not password.isascii():
        raise ZvtError("a ZVT password is six digits")
    return bytes.fromhex(password)


def _amount(amount: int) -> bytes:
    if not 0 < amount <= MAX_AMOUNT:
        raise ZvtError(f"amount {amount} is not 1 to {MAX_AMOUNT} minor units")
    return encode_bmp(0x04, encode_bcd(amount, 6))


def _currency(number: int) -> bytes:
    if not 0 < number <= 999:
        raise ZvtError(f"currency code {number} is not an ISO 4217 number")
    return encode_bcd(number, 2)


def _byte(value: int) -> int:
    if not 0 <= value <= 0xFF:
        raise ZvtError(f"{value} does not fit one byte")
    return value
