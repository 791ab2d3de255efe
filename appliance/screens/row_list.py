"""RowList: a RecycleView that redraws only what changed, for lists updated on every scan."""

from __future__ import annotations

from typing import Any

from kivy.uix.recycleview import RecycleView
from kivy.uix.recycleview.views import RecycleDataAdapter
from kivy.uix.screenmanager import Screen


class RowsStayPut(RecycleDataAdapter):
    """Keeps each view on its row when the data changes.

    Kivy's adapter sends every view to a shared pool on any change and hands them back in
    reverse, so each row's view gets another row's texts and re-renders every label: on a
    software-rendered kiosk that was most of a scan's frame. Here a view stays with its
    index and is only told the new values, and a label whose text did not change stays as it is.
    """

    def invalidate(self) -> None:
        self.make_views_dirty()  # dirty: still bound to its index, not pooled

    def get_view(self, index: int, data_item: dict[str, Any], viewclass: Any) -> Any:
        dirty = self.dirty_views.get(viewclass)
        if dirty is not None and index in dirty:
            view = dirty.pop(index)
            # Kivy assumes a dirty view is in sync; after a data change it may not be.
            self.refresh_view_attrs(index, data_item, view)
            return view
        return super().get_view(index, data_item, viewclass)


class RowList(RecycleView):
    """A scrolling list of rows, clipped by a scissor rectangle (see widgets.kv).

    A list on a screen that is not shown keeps its changes until the screen comes up: the
    staff till and the basket both follow the cart, and only one of them is on show.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("view_adapter", RowsStayPut())
        super().__init__(**kwargs)
        self._waits_for: Screen | None = None

    def refresh_views(self, *largs: Any) -> None:
        if self.get_root_window() is None and self._wait_for_screen():
            return  # Kivy's refresh flags stay set: the screen's entry runs them
        super().refresh_views(*largs)

    def _wait_for_screen(self) -> bool:
        """Refresh when the screen holding this list is entered; False if there is none."""
        if self._waits_for is None:
            holder = self.parent
            while holder is not None and not isinstance(holder, Screen):
                holder = holder.parent
            if holder is None:
                return False
            holder.bind(on_pre_enter=lambda *_args: self._refresh_trigger())
            self._waits_for = holder
        return True
