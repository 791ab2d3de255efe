"""Items without a barcode: pick a category or type a name on the screen's own keyboard."""

from __future__ import annotations

from typing import Any

from kivy.properties import BooleanProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.recycleview.views import RecycleDataViewBehavior

from appliance.screens.customer.panes import Pane, PaneSwitcher
from appliance.screens.presenter_set import running_presenters
from appliance.screens.widgets import AppScreen, TextKeyboard, TouchButton

__all__ = ["BrowseScreen", "CategoryButton", "Pane", "PaneSwitcher", "ProductRow"]


class ProductRow(RecycleDataViewBehavior, BoxLayout):
    """One product found: its picture, its name, its price and a big Add."""

    sku = StringProperty("")
    name = StringProperty("")
    price = StringProperty("")
    restricted = BooleanProperty(False)
    picture = StringProperty("")  # the picture's file ("" none), read only while on show


class CategoryButton(TouchButton):
    """Lists the products of one category."""

    category = StringProperty("")


class BrowseScreen(AppScreen):
    """Categories or results above, the keyboard below while the customer types."""

    keyboard_open = BooleanProperty(True)

    def on_kv_post(self, base_widget: Any) -> None:
        # Held here: the keyboard leaves the tree while it is hidden, and `ids` keeps no reference.
        self._keyboard: TextKeyboard = self.ids.keyboard.__self__
        self.ids.panes.collect()
        self.keyboard_open = False
        browse = running_presenters().browse
        browse.bind(categories=self._fill_categories)
        self._fill_categories(browse, browse.categories)

    def on_keyboard_open(self, *_args: Any) -> None:
        holder = self.ids.keyboard_holder
        if self.keyboard_open and self._keyboard.parent is None:
            holder.add_widget(self._keyboard)
        elif not self.keyboard_open and self._keyboard.parent is not None:
            holder.remove_widget(self._keyboard)

    def on_pre_enter(self, *_args: Any) -> None:
        # Every visit starts from the categories with an empty search.
        self._keyboard.value = ""
        self.keyboard_open = False

    def _fill_categories(self, _browse: Any, categories: list[str]) -> None:
        grid = self.ids.category_grid
        grid.clear_widgets()
        for category in categories:
            grid.add_widget(CategoryButton(category=category))
