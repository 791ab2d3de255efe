"""One pane at a time in the same place: a screen's states drawn as separate layouts."""

from __future__ import annotations

from typing import Any

from kivy.properties import StringProperty
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.relativelayout import RelativeLayout


class Pane(BoxLayout):
    """A layout shown by a PaneSwitcher while its `pane` name is the current one."""

    pane = StringProperty("")


class PaneSwitcher(RelativeLayout):
    """Holds Panes and shows only the `current` one.

    The others leave the widget tree: a disabled or transparent widget under the shown
    one would still take its touches.
    """

    current = StringProperty("")

    def __init__(self, **kwargs: Any) -> None:
        self._panes: dict[str, Pane] = {}
        super().__init__(**kwargs)

    def collect(self) -> None:
        """Take the Panes built from kv into keeping; call once the screen's kv is applied."""
        for child in list(self.children):
            if isinstance(child, Pane):
                self._panes[child.pane] = child
                self.remove_widget(child)
        self._show()

    def on_current(self, *_args: Any) -> None:
        self._show()

    def _show(self) -> None:
        if not self._panes:
            return  # not collected yet
        wanted = self._panes.get(self.current)
        for child in list(self.children):
            if child is not wanted:
                self.remove_widget(child)
        if wanted is not None and wanted.parent is None:
            self.add_widget(wanted)
