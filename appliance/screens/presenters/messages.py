"""Errors in words a customer understands; the technical reason goes to the log."""

from __future__ import annotations

import logging

from appliance.errors import (
    ApplianceError,
    BarcodeError,
    CartError,
    DeviceError,
    NoOpenShiftError,
    SalesPausedError,
    TenderError,
    TillError,
    UnknownProductError,
)
from appliance.screens.i18n import Translator

log = logging.getLogger(__name__)


def customer_message(tr: Translator, err: ApplianceError) -> str:
    """What to show for an error; never a stack trace or an internal code."""
    log.info("shown to the customer: %s: %s", type(err).__name__, err)
    if isinstance(err, UnknownProductError):
        return tr._("We could not find this item. Please try again or ask for help.")
    if isinstance(err, BarcodeError):
        return tr._("This barcode could not be read. Please scan it again.")
    if isinstance(err, NoOpenShiftError):  # before SalesPausedError, which it also is
        return tr._("Sales start when a shift is open. Please ask a member of staff.")
    if isinstance(err, SalesPausedError):
        return tr._("This checkout cannot start a new sale now. Please ask a member of staff.")
    if isinstance(err, TenderError):
        return tr._("The payment did not go through. Please try again.")
    if isinstance(err, CartError):
        return tr._("That change to the basket is not possible.")
    if isinstance(err, DeviceError):
        return tr._("A device is not working. Please ask for help.")
    return tr._("Something went wrong. Please ask for help.")


def staff_message(tr: Translator, err: ApplianceError | None) -> str:
    """What staff see when a till operation failed: the till's own reason where it gives one."""
    log.info("shown to staff: %s: %s", type(err).__name__, err)
    if isinstance(err, NoOpenShiftError):
        return tr._("No shift is open on this till.")
    if isinstance(err, TillError):
        return tr._("This is not possible: {reason}").format(reason=str(err))
    if isinstance(err, DeviceError):
        return tr._("A device is not working: {reason}").format(reason=str(err))
    return tr._("It could not be saved. Please try again.")
