"""ZVT result codes (BMP 27, Abort 06 1E, negative answers 84 xx): what they tell a customer.

PA00P015's error-message list: 00 is success; 01-63 (1-99) are the authorisation system's
own codes, for girocard and the card schemes the ISO 8583 response codes sent as binary;
64-FF are the terminal's. The message is plain English for the screens to translate; each is
marked with `N_` (gettext's no-op marker, one of pybabel's default keywords) so extraction
finds it.
"""

from __future__ import annotations

from appliance.core.texts import N_

SUCCESS = 0x00
DECLINED = 0x05  # ISO 8583 "do not honour": what a decline usually carries
ABORTED = 0x6C  # abort via time-out or abort key: the customer or the ECR cancelled
WRONG_CURRENCY = 0x6F
FUNCTION_NOT_POSSIBLE = 0x83
PRINTER_NOT_READY = 0xCC
SYSTEM_ERROR = 0xFF


MSG_APPROVED = N_("Payment approved.")
MSG_DECLINED = N_("The card was declined.")
MSG_CANCELLED = N_("The payment was cancelled.")
MSG_NOT_READABLE = N_("The card could not be read. Please try again.")
MSG_NOT_SUPPORTED = N_("This card is not accepted here.")
MSG_PIN_WRONG = N_("The PIN was wrong.")
MSG_PIN_LIMIT = N_("Too many wrong PINs. The card is blocked for now.")
MSG_FUNDS = N_("Not enough funds on the card.")
MSG_EXPIRED = N_("The card has expired.")
MSG_NOT_YET_VALID = N_("The card is not valid yet.")
MSG_CURRENCY = N_("The terminal cannot take this currency.")
MSG_TRY_AGAIN = N_("The terminal could not reach the bank. Please try again.")
MSG_TERMINAL = N_("The card terminal is not ready. Please ask staff.")
MSG_AMOUNT = N_("This amount is not possible with this card.")
MSG_ALREADY_REVERSED = N_("This payment was already reversed.")
MSG_NO_REVERSAL = N_("This payment can no longer be reversed.")
MSG_UNKNOWN = N_("The terminal's answer did not arrive. Please ask staff.")

_MESSAGES: dict[int, str] = {
    SUCCESS: MSG_APPROVED,
    # Authorisation system (ISO 8583 codes as binary): the few a customer can act on.
    0x0E: MSG_NOT_SUPPORTED,  # 14 invalid card number
    0x21: MSG_EXPIRED,  # 33 expired card
    0x33: MSG_FUNDS,  # 51 insufficient funds
    0x36: MSG_EXPIRED,  # 54 expired card
    0x37: MSG_PIN_WRONG,  # 55 incorrect PIN
    0x39: MSG_NOT_SUPPORTED,  # 57 transaction not permitted to cardholder
    0x3D: MSG_AMOUNT,  # 61 exceeds withdrawal amount limit
    0x4B: MSG_PIN_LIMIT,  # 75 allowable number of PIN tries exceeded
    # The terminal's own codes.
    0x64: MSG_NOT_READABLE,  # card not readable (LRC/parity error)
    0x65: MSG_NOT_READABLE,  # card data not present
    0x66: MSG_TRY_AGAIN,  # processing error
    0x67: MSG_NOT_SUPPORTED,  # function not permitted for ec and Maestro cards
    0x68: MSG_NOT_SUPPORTED,  # function not permitted for credit and tank cards
    0x6A: MSG_TERMINAL,  # turnover file full
    0x6B: MSG_TERMINAL,  # function deactivated (PT not registered)
    ABORTED: MSG_CANCELLED,
    0x6E: MSG_NOT_SUPPORTED,  # card in blocked list
    WRONG_CURRENCY: MSG_CURRENCY,
    0x71: MSG_FUNDS,  # credit not sufficient (chip card)
    0x72: MSG_NOT_READABLE,  # chip error
    0x73: MSG_NOT_READABLE,  # card data incorrect
    0x76: MSG_NOT_SUPPORTED,  # PAN not in white list
    0x77: MSG_TERMINAL,  # end-of-day batch not possible
    0x78: MSG_EXPIRED,
    0x79: MSG_NOT_YET_VALID,
    0x7A: MSG_NOT_SUPPORTED,  # card unknown
    0x7B: MSG_NOT_READABLE,  # fallback to magnetic stripe not possible (girocard)
    0x7C: MSG_NOT_READABLE,  # fallback to magnetic stripe not possible (other cards)
    0x7D: MSG_TRY_AGAIN,  # communication error
    FUNCTION_NOT_POSSIBLE: MSG_TERMINAL,
    0x85: MSG_TERMINAL,  # key missing
    0x89: MSG_TERMINAL,  # PIN pad defective
    0x9A: MSG_TRY_AGAIN,  # ZVT protocol error
    0x9B: MSG_TRY_AGAIN,  # error from dial-up / communication fault
    0x9C: MSG_TRY_AGAIN,  # please wait
    0xA0: MSG_TRY_AGAIN,  # receiver not ready
    0xA1: MSG_TRY_AGAIN,  # remote station does not respond
    0xA3: MSG_TRY_AGAIN,  # no connection
    0xB1: MSG_TERMINAL,  # memory full
    0xB2: MSG_TERMINAL,  # merchant journal full
    0xB4: MSG_ALREADY_REVERSED,
    0xB5: MSG_NO_REVERSAL,
    0xBF: MSG_TERMINAL,  # voltage supply too low
    0xC0: MSG_TERMINAL,  # card locking mechanism defective
    0xC1: MSG_TERMINAL,  # merchant card locked
    0xC2: MSG_TERMINAL,  # diagnosis required
    0xC3: MSG_AMOUNT,  # maximum amount exceeded
    0xC4: MSG_TERMINAL,  # card profile invalid
    0xC5: MSG_NOT_SUPPORTED,  # payment method not supported
    0xC6: MSG_CURRENCY,  # currency not applicable
    0xC8: MSG_AMOUNT,  # amount too small
    0xC9: MSG_AMOUNT,  # maximum transaction amount too small
    0xCB: MSG_CURRENCY,  # function only allowed in euro
    PRINTER_NOT_READY: MSG_TERMINAL,
    0xD2: MSG_NOT_SUPPORTED,  # function not permitted for service / bank customer cards
    0xDC: MSG_NOT_READABLE,  # card inserted
    0xE2: MSG_TERMINAL,  # card reader does not answer
    0xE3: MSG_TERMINAL,  # shutter closed
    0xEA: MSG_NOT_SUPPORTED,  # card code not permitted
    0xEC: MSG_PIN_WRONG,  # PIN processing not possible
    0xED: MSG_TERMINAL,  # PIN pad defective
    0xF0: MSG_TERMINAL,  # open end-of-day batch present
    0xF1: MSG_TRY_AGAIN,  # ec-cash/Maestro offline error
    0xFA: MSG_TRY_AGAIN,  # error transmitting offline transactions
    0xFC: MSG_TERMINAL,  # necessary device not present or defective
    SYSTEM_ERROR: MSG_TRY_AGAIN,
}


def message_for(code: int | None) -> str:
    """The customer message for a result code; a code not listed is a plain decline."""
    if code is None:
        return MSG_DECLINED
    return _MESSAGES.get(code, MSG_DECLINED)


def all_messages() -> frozenset[str]:
    """Every message this table can give (for a catalog check)."""
    return frozenset(_MESSAGES.values()) | {MSG_DECLINED, MSG_UNKNOWN}
