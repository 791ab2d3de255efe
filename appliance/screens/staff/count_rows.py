"""CountRow: one denomination of a cash count, with - and +, its pieces and its subtotal."""

from __future__ import annotations

from kivy.properties import BooleanProperty, NumericProperty, ObjectProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.recycleview.views import RecycleDataViewBehavior


class CountRow(RecycleDataViewBehavior, BoxLayout):
    """A note or coin: touch its pieces to type them on the keypad, or step with - and +."""

    denomination = NumericProperty(0)
    label = StringProperty("")
    count = StringProperty("0")
    subtotal = StringProperty("")
    selected = BooleanProperty(False)
    counter = ObjectProperty(None, allownone=True)  # the CashCounter the row belongs to
