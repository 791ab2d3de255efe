"""RowList: a RecycleView that redraws only what changed, for lists updated on every scan."""

from __future__ import annotations

from typing import Any

from kivy.uix.recycleview import RecycleView
from kivy.uix.recycleview.views import RecycleDataAdapter


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
    """A scrolling list of rows, clipped by a scissor rectangle (see widgets.kv)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("view_adapter", RowsStayPut())
        super().__init__(**kwargs)
