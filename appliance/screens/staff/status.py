"""Status for staff: sync, devices and today's totals, fresh every 2 s while shown."""

from __future__ import annotations

from typing import Any

from kivy.properties import StringProperty
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.layout import Layout

from appliance.screens.presenter_set import running_presenters
from appliance.screens.widgets import AppScreen


class StatusLine(BoxLayout):
    """A label and its value, coloured by `state` ("ok", "degraded", "offline")."""

    label = StringProperty("")
    value = StringProperty("")
    state = StringProperty("ok")


class DeviceLine(BoxLayout):
    """One device: its name and kind, its health in colour, and why."""

    name = StringProperty("")
    kind = StringProperty("")
    state = StringProperty("ok")
    state_text = StringProperty("")
    reason = StringProperty("")


class StatusScreen(AppScreen):
    """Three sections behind three buttons: Sync, Devices, Today."""

    def on_kv_post(self, *_args: Any) -> None:
        status = running_presenters().staff_status
        status.bind(
            sync_rows=lambda _p, rows: self._fill(self.ids.sync, StatusLine, rows),
            device_rows=lambda _p, rows: self._fill(self.ids.devices, DeviceLine, rows),
            today_rows=lambda _p, rows: self._fill(self.ids.today, StatusLine, rows),
        )

    def on_pre_enter(self, *_args: Any) -> None:
        running_presenters().staff_status.start()

    def on_leave(self, *_args: Any) -> None:
        running_presenters().staff_status.stop()

    @staticmethod
    def _fill(holder: Layout, line: type[BoxLayout], rows: list[dict[str, str]]) -> None:
        """Show a section's rows, reusing its lines: building widgets costs a frame."""
        lines = list(reversed(holder.children))  # children are kept last-added first
        if len(lines) != len(rows):
            holder.clear_widgets()
            lines = []
            for _ in rows:
                lines.append(line())
                holder.add_widget(lines[-1])
        for widget, row in zip(lines, rows, strict=True):
            for name, value in row.items():
                setattr(widget, name, value)
