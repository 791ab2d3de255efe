"""The appliance's one exception tree; every error raised on purpose derives from it."""


class ApplianceError(Exception):
    """Base of every error the appliance raises on purpose."""


class ConfigError(ApplianceError):
    """The configuration file is missing, unreadable or holds a bad value."""


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


class DocumentError(DomainError):
    """A refund or void does not fit the sale it references."""


class StoreError(ApplianceError):
    """The local database cannot do what was asked."""


class SchemaTooNewError(StoreError):
    """The database was written by a newer appliance than this one."""


class CatalogImportError(ApplianceError):
    """A catalog import was refused; nothing was imported."""


class DeviceError(ApplianceError):
    """A device cannot do what was asked (offline, out of paper, timed out, ...)."""
