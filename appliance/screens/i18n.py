"""Translations for the screen: gettext catalogs read with babel, switchable at run time.

The `.kv` files write `tr._("Pay")`; `tr` is an Observable, so every such text is
re-evaluated when the customer picks another language.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal
from babel.support import NullTranslations, Translations
from kivy.event import Observable

from appliance.core.cart import GRAMS_PER_KG
from appliance.core.money import currency_exponent

log = logging.getLogger(__name__)

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
DOMAIN = "appliance"
SOURCE_LANGUAGE = "en"

# What kv may bind to on `tr`: texts, plurals, money and dates all change with the language.
LANGUAGE_SENSITIVE = frozenset({"_", "n_", "money", "datetime"})
LANGUAGE_NAMES = {"en": "English", "de": "Deutsch", "fr": "Français", "es": "Español"}


@cache
def load_translations(language: str) -> NullTranslations:
    """The catalog for a language, compiled from its `.po` in memory (no build step)."""
    po = LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    if language == SOURCE_LANGUAGE or not po.exists():
        if language != SOURCE_LANGUAGE:
            log.warning("no translations for %s; showing English", language)
        return NullTranslations()
    with po.open("rb") as source:
        catalog = read_po(source, locale=language)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


def display_locale(language: str, store_locale: str) -> str:
    """The locale for numbers and dates: the customer's language in the store's country."""
    territory = Locale.parse(store_locale).territory
    if territory:
        try:
            return str(Locale.parse(f"{language}_{territory}"))
        except (ValueError, UnknownLocaleError):
            pass
    return language


# A basket shows the same few prices again on every change, and babel takes a third of a
# millisecond for each: remembering them keeps a scan inside its frame.
@lru_cache(maxsize=4096)
def _format_money(minor: int, currency: str, locale: str) -> str:
    """`minor` units of `currency` as `locale` writes them."""
    return format_currency(minor / 10 ** currency_exponent(currency), currency, locale=locale)


class Translator(Observable):
    """`tr._(text)` in Python and kv; `switch(language)` re-renders every bound text."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.language = SOURCE_LANGUAGE
        self.locale = "en_US"
        self._translations: NullTranslations = NullTranslations()
        self._observers: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = []

    def _(self, text: str) -> str:
        """The translation of `text` in the current language."""
        return self._translations.gettext(text)

    def message(self, text: str) -> str:
        """A device's plain-English message (marked N_ where it is written, e.g. a card
        terminal's result codes), in the current language; unknown texts as they are."""
        return self._translations.gettext(text)

    def n_(self, singular: str, plural: str, count: int) -> str:
        """The singular or plural translation for `count`."""
        return self._translations.ngettext(singular, plural, count)

    def money(self, minor: int, currency: str) -> str:
        """An amount in minor units, formatted for the current locale."""
        return _format_money(minor, currency, self.locale)

    def kilograms(self, grams: int) -> str:
        """A weight in grams as kilograms to the gram, e.g. "1,234 kg" in German."""
        kg = format_decimal(Decimal(grams) / GRAMS_PER_KG, format="0.000", locale=self.locale)
        return self._("{kg} kg").format(kg=kg)

    def datetime(self, moment: datetime) -> str:
        """A date and time, formatted for the current locale."""
        return format_datetime(moment, format="short", locale=self.locale)

    def switch(self, language: str, store_locale: str) -> None:
        """Change language and locale; every `tr._` in kv is evaluated again."""
        locale = display_locale(language, store_locale)
        if (language, locale) == (self.language, self.locale):
            return  # every text of every screen re-rendered for nothing: a long frame
        self.language = language
        self.locale = locale
        self._translations = load_translations(language)
        alive = []
        for observer in self._observers:
            func, largs, _kwargs = observer
            try:
                func(*largs, self, None)  # as EventDispatcher calls a bound handler
            except ReferenceError:
                continue  # its widget is gone: forget the binding
            alive.append(observer)
        self._observers = alive

    def fbind(self, name: str, func: Callable[..., Any], *largs: Any, **kwargs: Any) -> Any:
        if name in LANGUAGE_SENSITIVE:  # kv binds to `tr._`: remember whom to tell on switch
            self._observers.append((func, largs, kwargs))
            return len(self._observers)
        return super().fbind(name, func, *largs, **kwargs)

    def funbind(self, name: str, func: Callable[..., Any], *largs: Any, **kwargs: Any) -> Any:
        if name in LANGUAGE_SENSITIVE:
            self._observers = [o for o in self._observers if o[0] is not func]
            return None
        return super().funbind(name, func, *largs, **kwargs)

    def forget_views(self) -> None:
        """Drop the bindings of a closed app's widgets (tests build many apps in one process)."""
        self._observers.clear()


tr = Translator()
