"""The appliance's one exception tree; every error raised on purpose derives from it.

A few classes stay beside the code that raises them, because they carry that module's
own data or belong to the hub program, not to the appliance; each hangs from a class here:

- CatalogImportError <- appliance.catalog_import.BadRowsError (carries the refused RowErrors)
- SyncError <- hub.cli_command.FleetClientError, hub.server.HubConnectError
- StoreError <- hub.db.HubDatabaseError, appliance.store.thumbnails.NoRoomForPictureError
- ApplianceError <- hub.ca.CaError, hub.card_ledger.CardLedgerError,
  hub.dashboard.accounts.AdminError, hub.dashboard.sending.NotConfiguredError,
  hub.webhooks.signing.WebhookVerificationError (also a ValueError),
  hub.api.problems.ProblemError (also Litestar's HTTPException: an API error with its HTTP
  status) <- hub.api.webhooks.BeingSentError
- TillError <- appliance.core.shift.SignOffNeededError (carries the difference and the threshold)
- DeviceError <- appliance.core.scale.WeighingError (carries the scale's reading)
- UpdateError <- hub.releases.errors.ReleaseError, hub.releases.errors.RolloutError

tests/core/test_exception_tree.py fails when an exception class anywhere in `appliance`
or `hub` does not derive from ApplianceError, or is defined elsewhere and not listed here.
"""


class ApplianceError(Exception):
    """Base of every error the appliance raises on purpose."""


class ConfigError(ApplianceError):
    """The configuration file is missing, unreadable or holds a bad value."""


class FleetKeyError(ConfigError):
    """A fleet key file is missing, unreadable or not an Ed25519 key."""


class DomainError(ApplianceError):
    """A request the domain rules refuse (bad barcode, unpaid cart, ...)."""


class BarcodeError(DomainError):
    """A scanned code is not a valid barcode."""


class UnknownProductError(DomainError):
    """No product in the catalog matches a barcode or SKU."""


class CartError(DomainError):
    """A cart operation is not allowed (unknown line, bad quantity, ...)."""


class TenderError(DomainError):
    """Tenders do not settle the cart (too little, change from a card, ...)."""


class CardOfflineError(TenderError):
    """The hub did not answer for a stored-value card, and it may not pay more offline here."""


class SalesPausedError(DomainError):
    """No new sale may start now (the data partition is below its reserve or failed)."""


class DocumentError(DomainError):
    """A refund or void does not fit the sale it references."""


class StaffError(DomainError):
    """A PIN, badge or permission check failed."""


class TillError(DomainError):
    """A till operation (shift, cash in or out, report, void) is not allowed now."""


class RemoteApprovalError(DomainError):
    """A staff device's approval cannot be applied: the call is over, or the role may not."""


# Also a SalesPausedError: whoever already tells a customer that no sale can start now
# tells them this too.
class NoOpenShiftError(SalesPausedError, TillError):
    """No shift is open on this till, so no sale (or cash movement) may start."""


NoOpenShift = NoOpenShiftError  # the name the till's design uses


class StoreError(ApplianceError):
    """The local database cannot do what was asked."""


class SchemaTooNewError(StoreError):
    """The database was written by a newer appliance than this one."""


class StorageFaultError(StoreError):
    """The disk under the database failed the write: full, read-only or an I/O error."""


class StorageFullError(StorageFaultError):
    """The data partition (or the database's size limit) has no room left."""


class StorageReadOnlyError(StorageFaultError):
    """The data partition is read-only, as the kernel leaves it after SD-card errors."""


class StorageIOError(StorageFaultError):
    """The SD card or disk returned an I/O error, or the database file is damaged."""


class CatalogImportError(ApplianceError):
    """A catalog import was refused; nothing was imported."""


class DeviceError(ApplianceError):
    """A device cannot do what was asked (offline, out of paper, timed out, ...)."""


class PrintOutcomeUnknownError(DeviceError):
    """The job's bytes left for the printer, but whether it printed is unknown: never retry."""


class ZvtError(DeviceError):
    """Bytes from or for a ZVT payment terminal break the protocol (says what and where)."""


class ZvtLinkError(ZvtError):
    """The link to a ZVT terminal failed: closed, not acknowledged, or refused."""


class ZvtTimeoutError(ZvtLinkError):
    """A ZVT terminal did not answer within the protocol's timer (T1, T2, T3 or T4)."""


class SyncError(ApplianceError):
    """The exchange with the hub failed: the link, a message, a command or the catalog."""


class HubLinkError(SyncError):
    """The hub link cannot be set up: the device certificate cannot be read, or names no device."""


# Also a ValueError, as it was before the tree took it in: a malformed payload is a bad
# value, and callers may still catch it as one.
class DecodeError(SyncError, ValueError):
    """A payload is not valid JSON for its topic's struct (or of a newer version)."""


class CatalogSyncError(SyncError):
    """A delta or snapshot from the hub holds a product the device cannot take."""


class CommandSignatureError(SyncError):
    """A command is unsigned or its signature does not verify with the fleet key."""


class UnsignedCommandError(CommandSignatureError):
    """A command carries no signature."""


class BadSignatureError(CommandSignatureError):
    """A command's signature is malformed or was not made by the fleet key over these fields."""


class UpdateError(ApplianceError):
    """A software update could not go on (download, slot, health gate)."""


class UpdateRejectedError(UpdateError):
    """An update refused before any reboot: its signature, hash, version or manifest."""
