"""The stores' details printed on e-receipts, read from a TOML file given to `appliance-hub web`.

[stores.berlin-1]
name = "Corner Shop"
address = ["Hauptstr. 1", "10115 Berlin"]
tax_id = "DE123456789"
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from appliance.errors import ConfigError
from hub.receipts.lookup import StoreDetails


class _Store(msgspec.Struct, forbid_unknown_fields=True):
    name: str = ""
    address: list[str] = []
    tax_id: str = ""


class _File(msgspec.Struct, forbid_unknown_fields=True):
    stores: dict[str, _Store] = {}


def load_store_details(path: Path) -> dict[str, StoreDetails]:
    """{store id: details} from the file; ConfigError naming what is wrong with it."""
    try:
        found = msgspec.toml.decode(path.read_bytes(), type=_File)
    except OSError as err:
        raise ConfigError(f"{path}: cannot be read: {err.strerror}") from err
    except (msgspec.DecodeError, msgspec.ValidationError) as err:
        raise ConfigError(f"{path}: {err}") from err
    return {
        store: StoreDetails(name=s.name, address=tuple(s.address), tax_id=s.tax_id)
        for store, s in found.stores.items()
    }
