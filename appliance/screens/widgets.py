"""Widgets every screen uses: screens, buttons, keypads, the cart."""

from __future__ import annotations

from typing import Any

from kivy.properties import (
    BooleanProperty,
    NumericProperty,
    OptionProperty,
    StringProperty,
)
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.button import Button
from kivy.uix.gridlayout import GridLayout
from kivy.uix.label import Label
from kivy.uix.modalview import ModalView
from kivy.uix.recycleview.views import RecycleDataViewBehavior
from kivy.uix.screenmanager import Screen

from appliance.screens.pictures import Thumbnail  # noqa: F401  (defined there, named in kv)
from appliance.screens.row_list import RowList  # noqa: F401  (defined there, named in kv)


class AppScreen(Screen):
    """A screen of the checkout; the window's clear colour is its background."""


class InstantModal(ModalView):
    """A dialog that is gone the moment it closes, as screens switch at once.

    Kivy fades a closing ModalView out over 0.1 s, and until it is removed it takes every
    touch: the cashier's next tap, on the till the dialog uncovers, was lost.
    """

    def dismiss(self, *args: Any, **kwargs: Any) -> None:
        """Close now, without the fade (`animation=True` still fades)."""
        kwargs.setdefault("animation", False)
        super().dismiss(*args, **kwargs)


class TouchButton(Button):
    """A button at least 48 dp high; `kind` picks its colours."""

    kind = OptionProperty("primary", options=["primary", "secondary", "danger", "quiet"])


class MessageBanner(Label):
    """The session's message, across the bottom of every screen, while there is one."""


class Keypad(GridLayout):
    """Digits, clear and back; `value` holds what was typed, `on_enter` fires on OK."""

    value = StringProperty("")
    max_length = NumericProperty(12)
    masked = BooleanProperty(False)  # a PIN shows dots
    enter_text = StringProperty("OK")

    __events__ = ("on_enter",)

    def press(self, key: str) -> None:
        """A key was touched."""
        if key == "back":
            self.value = self.value[:-1]
        elif key == "clear":
            self.value = ""
        elif key == "enter":
            self.dispatch("on_enter", self.value)
        elif len(self.value) < self.max_length:
            self.value += key

    def on_enter(self, value: str) -> None:
        """Default handler: nothing."""


# Letter rows per language: a German customer looks for Z where a German keyboard has it.
KEYBOARD_ROWS = {
    "en": ("1234567890", "QWERTYUIOP", "ASDFGHJKL", "ZXCVBNM"),
    "de": ("1234567890", "QWERTZUIOPÜ", "ASDFGHJKLÖÄ", "YXCVBNM"),
}


class TextKeyboard(BoxLayout):
    """An on-screen keyboard for search: letters, digits, space and back."""

    value = StringProperty("")
    max_length = NumericProperty(40)
    language = StringProperty("en")

    def on_language(self, *_args: Any) -> None:
        self.build_rows()

    def build_rows(self) -> None:
        """Lay out the keys for the current language."""
        from kivy.factory import Factory

        from appliance.screens.i18n import tr

        self.clear_widgets()
        for letters in KEYBOARD_ROWS.get(self.language, KEYBOARD_ROWS["en"]):
            row = Factory.KeyboardRow()
            for letter in letters:
                key = Factory.KeyboardKey(text=letter)
                key.bind(on_release=lambda button: self.press(button.text))
                row.add_widget(key)
            self.add_widget(row)
        row = Factory.KeyboardRow()
        for key_name, label, weight in (
            ("clear", tr._("Clear"), 2),
            ("space", tr._("Space"), 5),
            ("back", "<-", 2),
        ):
            key = Factory.KeyboardKey(text=label, size_hint_x=weight)
            key.bind(on_release=lambda _button, name=key_name: self.press(name))
            row.add_widget(key)
        self.add_widget(row)

    def press(self, key: str) -> None:
        """A key was touched."""
        if key == "back":
            self.value = self.value[:-1]
        elif key == "clear":
            self.value = ""
        elif key == "space":
            if self.value and not self.value.endswith(" "):
                self.value += " "
        elif len(self.value) < self.max_length:
            self.value += key


class CartRow(RecycleDataViewBehavior, BoxLayout):
    """One cart line in the list: picture, name, quantity with - and +, amount, remove."""

    line_id = NumericProperty(-1)
    name = StringProperty("")
    quantity = StringProperty("")
    countable = BooleanProperty(True)
    amount = StringProperty("")
    unit_price = StringProperty("")
    discount = StringProperty("")
    needs_age_check = BooleanProperty(False)
    highlight = BooleanProperty(False)
    editable = BooleanProperty(True)
    picture = StringProperty("")  # the picture's file ("" none), read only while on show
