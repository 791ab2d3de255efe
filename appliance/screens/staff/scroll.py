"""FitScroll: a ScrollView that scrolls only when its content does not fit.

A ScrollView holds back every touch for a moment to tell a tap from a scroll; on a keypad
that makes keys feel slow. Content that fits needs no scrolling, so touches go straight
through; on a small screen or with large text the same layout scrolls.
"""

from __future__ import annotations

from typing import Any

from kivy.uix.scrollview import ScrollView
from kivy.uix.widget import Widget


class FitScroll(ScrollView):
    """Vertical scrolling, switched on only while the content is taller than the view."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("do_scroll_x", False)
        super().__init__(**kwargs)
        self.bind(height=self._fit)

    def add_widget(self, widget: Widget, *args: Any, **kwargs: Any) -> None:
        super().add_widget(widget, *args, **kwargs)
        widget.bind(height=self._fit)
        self._fit()

    def remove_widget(self, widget: Widget, *args: Any, **kwargs: Any) -> None:
        widget.unbind(height=self._fit)
        super().remove_widget(widget, *args, **kwargs)
        self._fit()

    def _fit(self, *_args: Any) -> None:
        content = self.children[0] if self.children else None
        self.do_scroll_y = content is not None and content.height > self.height + 1
