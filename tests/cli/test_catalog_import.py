"""`appliance catalog import FILE`: every row valid or nothing imported; bad rows by line."""

from __future__ import annotations

import csv
import subprocess
from pathlib import Path

import pytest

from appliance.core.barcode import gtin_check_digit
from tests.cli.conftest import WAIT_SECONDS, Cli, appliance_script, catalog_at


def ean13(body: str) -> str:
    """A valid EAN-13 for a 12-digit body."""
    return body + gtin_check_digit(body)


APPLE = ean13("400638133393")
CHEESE = ean13("500011254812")
BREAD = ean13("761328902404")

GOOD = f"""\
sku,name,price,tax_class,category,barcodes,name:de,stock
APPLE,Apple,0.99,reduced,Fruit,{APPLE},Apfel,10
BREAD,Bread,2.49,standard,Bakery,,Brot,
CHEESE,Käse Gouda,4.99,reduced,Dairy,{CHEESE} {BREAD},,5
"""


def _write(tmp_path: Path, text: str, name: str = "products.csv", bom: bool = False) -> Path:
    path = tmp_path / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def _count(db_path: Path) -> int:
    if not db_path.exists():
        return 0
    with catalog_at(db_path) as catalog:
        return catalog.count()


def test_good_file_imports_every_product(appliance: Cli, tmp_path: Path, db_path: Path) -> None:
    """Three rows in, three products with prices, barcodes, translations and stock."""
    result = appliance("catalog", "import", str(_write(tmp_path, GOOD)))

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "imported 3 of 3 product(s)"
    assert result.stderr == ""
    with catalog_at(db_path) as catalog:
        assert catalog.count() == 3
        assert catalog.barcode_count() == 3
        apple = catalog.by_sku("APPLE")
        assert apple is not None
        assert apple.price.minor == 99
        assert apple.price.currency == "EUR"
        assert apple.category == "Fruit"
        assert apple.names == (("de", "Apfel"),)
        assert apple.name_in("de_AT") == "Apfel"
        assert catalog.stock_of("APPLE") == 10
        cheese = catalog.by_barcode_key(BREAD.zfill(14))
        assert cheese is not None
        assert cheese.name == "Käse Gouda"
        assert cheese.names == ()  # an empty translation cell stores nothing
        assert catalog.stock_of("BREAD") == 0  # no stock given: left as it was


def test_bom_is_ignored(appliance: Cli, tmp_path: Path, db_path: Path) -> None:
    """A UTF-8 byte-order mark (spreadsheet exports) does not spoil the first column name."""
    result = appliance("catalog", "import", str(_write(tmp_path, GOOD, bom=True)))

    assert result.exit_code == 0, result.output
    assert _count(db_path) == 3


def test_semicolons_and_decimal_commas(appliance: Cli, tmp_path: Path, db_path: Path) -> None:
    """European exports: ';' between cells and ',' as the decimal mark, with a BOM too."""
    text = (
        "sku;name;price;tax_class;barcodes\n"
        f"DATES;Datteln;1,50;reduced;{APPLE}\n"
        "EGGS;Eier;3,2;standard;\n"
    )

    result = appliance("catalog", "import", str(_write(tmp_path, text, bom=True)))

    assert result.exit_code == 0, result.output
    with catalog_at(db_path) as catalog:
        dates, eggs = catalog.by_sku("DATES"), catalog.by_sku("EGGS")
        assert dates is not None
        assert eggs is not None
        assert (dates.price.minor, eggs.price.minor) == (150, 320)
        assert dates.barcodes == (APPLE.zfill(14),)


BAD = f"""\
sku,name,price,tax_class,barcodes
GOOD-1,Good one,1.00,standard,{APPLE}
BAD-PRICE,Bad price,2.4.9,standard,
BAD-TAX,Bad tax class,1.00,luxury,
BAD-DIGIT,Bad check digit,1.00,standard,{APPLE[:-1]}{(int(APPLE[-1]) + 1) % 10}
GOOD-1,Same SKU again,1.00,standard,
SAME-CODE,Same barcode again,1.00,standard,{APPLE}
NO-NAME,,1.00,standard,
TOO-MANY,Too many cells,1.00,standard,,surplus
GOOD-2,Good two,2.00,reduced,{CHEESE}
"""

# (line number, SKU, words of the reason) for every bad row of BAD; line 1 is the header.
BAD_ROWS = (
    (3, "BAD-PRICE", "2.4.9"),
    (4, "BAD-TAX", "luxury"),
    (5, "BAD-DIGIT", "check digit"),
    (6, "GOOD-1", "SKU repeats line 2"),
    (7, "SAME-CODE", "repeats line 2"),
    (8, "NO-NAME", "name is empty"),
    (9, "TOO-MANY", "more cells"),
)


def _assert_bad_rows_listed(stderr: str) -> None:
    lines = stderr.splitlines()
    for number, sku, reason in BAD_ROWS:
        prefix = f"line {number} ({sku}): "
        found = [line for line in lines if line.startswith(prefix)]
        assert len(found) == 1, f"{prefix!r} not reported once in:\n{stderr}"
        assert reason in found[0], found[0]
    assert not any(line.startswith(("line 2 ", "line 10 ")) for line in lines), stderr


def test_bad_rows_abort_the_whole_import(appliance: Cli, tmp_path: Path, db_path: Path) -> None:
    """Every bad row is listed with its line and reason; exit 1; the catalog is unchanged."""
    assert appliance("catalog", "import", str(_write(tmp_path, GOOD))).exit_code == 0

    result = appliance("catalog", "import", str(_write(tmp_path, BAD, "bad.csv")))

    assert result.exit_code == 1
    _assert_bad_rows_listed(result.stderr)
    assert f"{len(BAD_ROWS)} bad row(s); nothing was imported" in result.stderr
    assert result.stdout == ""
    with catalog_at(db_path) as catalog:
        assert catalog.count() == 3
        assert catalog.by_sku("GOOD-1") is None
        assert catalog.by_sku("GOOD-2") is None
        apple = catalog.by_barcode_key(APPLE.zfill(14))
        assert apple is not None
        assert apple.sku == "APPLE"  # the barcode did not move to GOOD-1


def test_skip_bad_rows_imports_the_rest(appliance: Cli, tmp_path: Path, db_path: Path) -> None:
    """--skip-bad-rows writes the good rows and still lists every bad one."""
    result = appliance("catalog", "import", str(_write(tmp_path, BAD)), "--skip-bad-rows")

    assert result.exit_code == 0, result.output
    _assert_bad_rows_listed(result.stderr)
    assert (
        result.stdout.strip() == f"imported 2 of 9 product(s), skipped {len(BAD_ROWS)} bad row(s)"
    )
    with catalog_at(db_path) as catalog:
        assert catalog.count() == 2
        good = catalog.by_sku("GOOD-1")
        assert good is not None
        assert good.name == "Good one"  # the first of the repeated SKU, not the repeat
        assert catalog.by_sku("GOOD-2") is not None


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("sku,name,price", "missing column(s): tax_class"),
        ("sku,title,price,tax_class", "missing column(s): name"),
        ("sku,name,price,tax_class,colour", "unknown column(s): colour"),
    ],
)
def test_bad_header_is_refused(
    appliance: Cli, tmp_path: Path, db_path: Path, header: str, expected: str
) -> None:
    """A file without a required column (or with an unknown one) is refused as a whole."""
    path = _write(tmp_path, f"{header}\nA,B,1.00,standard,x\n")

    result = appliance("catalog", "import", str(path))

    assert result.exit_code == 1
    assert expected in result.stderr
    assert str(path) in result.stderr
    assert "Traceback" not in result.output
    assert _count(db_path) == 0


def test_reimport_updates_prices(appliance: Cli, tmp_path: Path, db_path: Path) -> None:
    """Importing again updates existing products rather than adding or refusing them."""
    assert appliance("catalog", "import", str(_write(tmp_path, GOOD))).exit_code == 0
    cheaper = GOOD.replace("APPLE,Apple,0.99", "APPLE,Apple,1.19").replace(",Brot,", ",Brot,7")

    result = appliance("catalog", "import", str(_write(tmp_path, cheaper, "again.csv")))

    assert result.exit_code == 0, result.output
    with catalog_at(db_path) as catalog:
        assert catalog.count() == 3
        apple = catalog.by_sku("APPLE")
        assert apple is not None
        assert apple.price.minor == 119
        assert catalog.stock_of("BREAD") == 7


def test_missing_file_is_a_usage_error(appliance: Cli, tmp_path: Path) -> None:
    """A file that is not there: click's usage error (exit 2) naming it."""
    result = appliance("catalog", "import", str(tmp_path / "nope.csv"))

    assert result.exit_code == 2
    assert "nope.csv" in result.output


def test_real_process_import(tmp_path: Path, config: Path, db_path: Path) -> None:
    """The console script imports; stdout holds the summary and nothing else."""
    path = _write(tmp_path, GOOD, bom=True)

    done = subprocess.run(
        [appliance_script(), "catalog", "import", path, "--config", config],
        capture_output=True,
        text=True,
        timeout=WAIT_SECONDS,
        check=False,
        cwd=tmp_path,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout == "imported 3 of 3 product(s)\n"
    assert _count(db_path) == 3


EXAMPLE_CATALOG = Path(__file__).resolve().parents[2] / "examples" / "catalog.csv"


@pytest.mark.skipif(not EXAMPLE_CATALOG.exists(), reason="no examples/catalog.csv")
def test_example_catalog_imports(appliance: Cli, db_path: Path) -> None:
    """The example the README points operators to imports without a bad row."""
    with EXAMPLE_CATALOG.open(encoding="utf-8-sig", newline="") as handle:
        rows = sum(1 for _ in csv.DictReader(handle))

    result = appliance("catalog", "import", str(EXAMPLE_CATALOG))

    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert _count(db_path) == rows
