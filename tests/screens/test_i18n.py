"""Every screen string is translated to German, placeholders intact, and the app switches."""

from __future__ import annotations

import ast
import re
import string
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from appliance.screens.i18n import DOMAIN, LOCALE_DIR, tr
from appliance.settings import parse_settings
from tests.screens.harness import Kiosk, open_kiosk

REPO = Path(__file__).resolve().parents[2]
SCREENS_DIR = REPO / "appliance" / "screens"
# In kv: tr._( or tr.n_( and the first character of what is passed.
KV_CALL = re.compile(r"\btr\.(n_|_)\(\s*(.)", re.DOTALL)
BABEL_CFG = REPO / "babel.cfg"
GERMAN_PO = LOCALE_DIR / "de" / "LC_MESSAGES" / f"{DOMAIN}.po"
# What the screens call: tr._("text") and tr.n_("one", "many", n), in Python and in kv.
KEYWORDS = {**DEFAULT_KEYWORDS, "n_": (1, 2)}
COFFEE = "4006381333931"


@dataclass(frozen=True, slots=True)
class Message:
    """One string a screen shows, where it is written."""

    msgid: str | tuple[str, ...]
    where: str

    @property
    def key(self) -> str:
        """The catalog's key: the singular of a plural."""
        return self.msgid[0] if isinstance(self.msgid, tuple) else self.msgid


def extracted() -> Iterator[Message]:
    """Every translatable string in appliance/screens, found the way `make messages` finds them."""
    with BABEL_CFG.open(encoding="utf-8") as config:
        method_map, options_map = parse_mapping_cfg(config)  # type: ignore[no-untyped-call]
    for filename, lineno, msgid, _comments, _context in extract_from_dir(
        str(REPO), method_map, options_map, keywords=KEYWORDS
    ):
        yield Message(msgid, f"{filename}:{lineno}")


@cache
def german() -> Catalog:
    """The German catalog as shipped."""
    with GERMAN_PO.open("rb") as source:
        return read_po(source, locale="de", domain=DOMAIN)


def texts(value: object) -> tuple[str, ...]:
    """A catalog id or string as its forms: one, or singular and plurals."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, tuple | list):
        return tuple(str(form) for form in value)
    return ()


def placeholders(text: str) -> set[str]:
    """The `{name}` fields of a format string."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def test_extraction_reads_python_and_kv() -> None:
    """The mapping finds strings in both kinds of file, or the checks below prove nothing."""
    places = {m.where.rsplit(":", 1)[0].rsplit(".", 1)[-1] for m in extracted()}
    keys = {m.key for m in extracted()}
    assert {"py", "kv"} <= places
    assert "Welcome" in keys  # welcome.kv
    assert "{count} item" in keys  # tr.n_ in shop.kv
    assert "We could not find this item. Please try again or ask for help." in keys  # messages.py


def literal_arguments(call: ast.Call) -> bool:
    """tr._("text") and tr.n_("one", "many", n): the texts written out, so they extract."""
    needed = 2 if isinstance(call.func, ast.Attribute) and call.func.attr == "n_" else 1
    texts_ = call.args[:needed]
    return len(texts_) == needed and all(
        isinstance(arg, ast.Constant) and isinstance(arg.value, str) for arg in texts_
    )


def test_every_translated_text_is_written_out() -> None:
    """A variable or f-string passed to tr._ cannot be extracted, so it is never translated."""
    found = []
    for path in sorted(SCREENS_DIR.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("_", "n_")
                and not literal_arguments(node)
            ):
                found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    for path in sorted(SCREENS_DIR.rglob("*.kv")):
        text = path.read_text(encoding="utf-8")
        for match in KV_CALL.finditer(text):
            if match.group(2) not in "\"'":
                line = text.count("\n", 0, match.start()) + 1
                found.append(f"{path.relative_to(REPO)}:{line}")
    assert not found, "tr._ / tr.n_ called with something other than a written-out text:\n" + (
        "\n".join(found)
    )


def test_every_screen_string_has_a_german_translation() -> None:
    catalog = german()
    missing = []
    for message in extracted():
        entry = catalog.get(message.key)
        if entry is None:
            missing.append(f"{message.where}: {message.key!r} is not in {GERMAN_PO.name}")
            continue
        forms = texts(entry.string)
        if entry.fuzzy or not forms or not all(forms):
            missing.append(f"{message.where}: {message.key!r} has no German translation")
        if isinstance(message.msgid, tuple) != isinstance(entry.id, tuple):
            missing.append(f"{message.where}: {message.key!r} plural in one place only")
    assert not missing, "\n".join(missing)


def test_translations_keep_their_placeholders() -> None:
    wrong = []
    for entry in german():
        if not entry.id or not entry.string:
            continue
        sources, forms = texts(entry.id), texts(entry.string)
        for index, form in enumerate(forms):
            source = sources[min(index, len(sources) - 1)]  # German: singular, then plural
            if form and placeholders(form) != placeholders(source):
                wrong.append(f"{source!r} -> {form!r}")
    assert not wrong, "placeholders differ:\n" + "\n".join(wrong)


def test_german_is_complete_for_plurals() -> None:
    """German has two plural forms; both are filled wherever the source has a plural."""
    catalog = german()
    assert catalog.num_plurals == 2
    for entry in catalog:
        if isinstance(entry.id, tuple):
            forms = texts(entry.string)
            assert len(forms) == 2 and all(forms), entry.id


def test_switching_the_running_app_to_german(kiosk: Kiosk) -> None:
    kiosk.wait_for_screen("welcome")
    kiosk.find_text("Welcome")
    kiosk.app.session.set_language("de")
    kiosk.pump(2)
    kiosk.find_text("Willkommen")
    kiosk.find_text("Starten")
    assert not [w for w in kiosk.widgets() if getattr(w, "text", None) == "Welcome"]
    kiosk.app.session.set_language("en")
    kiosk.pump(2)
    kiosk.find_text("Welcome")


def test_money_and_dates_follow_the_language(tmp_path: Path) -> None:
    """In an Irish store English shows €4.99 and German 4,99 €, on the screen itself."""
    settings = parse_settings(
        {
            "device": {"id": "sim-0001", "receipt_prefix": "SIM"},
            "database": {"path": str(tmp_path / "state" / "appliance.db")},
            "store": {"name": "Demo Store", "currency": "EUR", "locale": "en_IE"},
        },
        source="test",
    )
    with open_kiosk(tmp_path, settings=settings) as kiosk:
        assert kiosk.app.cart.scan(COFFEE)
        kiosk.app.session.go("shop")
        kiosk.wait_for_screen("shop")
        kiosk.find_text("€4.99")
        assert tr.datetime(datetime(2026, 11, 22, 20, 18)) == "22/11/2026, 20:18"
        kiosk.app.session.set_language("de")
        kiosk.pump(2)
        kiosk.find_text("4,99\u00a0€")  # CLDR puts a no-break space before the sign
        assert not [w for w in kiosk.widgets() if getattr(w, "text", None) == "€4.99"]
        assert tr.datetime(datetime(2026, 11, 22, 20, 18)) == "22.11.26, 20:18"
        kiosk.find_text("Summe")
