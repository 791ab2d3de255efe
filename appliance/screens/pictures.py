"""Product pictures in list rows: read from disk on a worker, only while a row is on show.

A `Thumbnail` is an Image whose `source` is a picture file (store/thumbnails.py). It never
reads the file itself, as Kivy's Image would in the frame: it asks the `PictureLoader`,
whose worker thread opens the file and decodes it at the size drawn (a JPEG decodes at a
fraction of its size, cheaply), and posts the pixels; on the main thread they become a
small texture, if the thumbnail still shows that file. Nothing is cached: a list row that
leaves the screen (a RecycleView keeps it for later) or gets another product lets its
texture go, so pictures cost memory only while they are on show. A missing or unreadable
file leaves the placeholder the `.kv` draws while there is no texture, and the row asks
again the next time it comes on show.
"""

from __future__ import annotations

import itertools
import logging
import threading
import weakref
from collections import deque
from dataclasses import dataclass
from typing import Any

from kivy.graphics.texture import Texture
from kivy.properties import NumericProperty
from kivy.uix.image import Image
from kivy.uix.widget import Widget

from appliance.core.events import Event, EventBus
from appliance.screens.customer.background import run_in_background

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PictureRead(Event):
    """A picture file decoded on the loader's worker: RGBA rows, top first."""

    ticket: int
    source: str
    size: tuple[int, int]
    pixels: bytes


@dataclass(frozen=True, slots=True)
class PictureUnread(Event):
    """A picture file the loader's worker could not read: its row shows the placeholder."""

    ticket: int
    source: str


class PictureLoader:
    """Reads picture files on one worker thread, oldest request first; main thread API.

    The worker runs while requests wait and ends when none do. A request withdrawn before
    its turn (its row scrolled away) is never read.
    """

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus
        self._lock = threading.Lock()
        self._waiting: deque[tuple[int, str, int]] = deque()  # ticket, source, edge in pixels
        self._wanted: dict[int, weakref.ref[Thumbnail]] = {}
        self._tickets = itertools.count(1)
        self._running = False
        self.read = 0  # pictures decoded (for tests and benchmarks)
        bus.subscribe(PictureRead, self._arrived)
        bus.subscribe(PictureUnread, self._missed)

    def request(self, thumbnail: Thumbnail, source: str, edge: int) -> int:
        """Read `source` for `thumbnail` at `edge` pixels; returns the request's ticket."""
        ticket = next(self._tickets)
        with self._lock:
            self._wanted[ticket] = weakref.ref(thumbnail)
            self._waiting.append((ticket, source, edge))
            if self._running:
                return ticket
            self._running = True
        run_in_background("picture-loader", self._drain)
        return ticket

    def withdraw(self, ticket: int) -> None:
        """Forget a request: it is not read, or its pixels are dropped when they arrive."""
        with self._lock:
            self._wanted.pop(ticket, None)

    # -- the worker thread ------------------------------------------------------------

    def _drain(self) -> None:
        ended = False  # the flag was cleared under the lock, as the queue ran dry
        try:
            while True:
                with self._lock:
                    while self._waiting and self._waiting[0][0] not in self._wanted:
                        self._waiting.popleft()  # withdrawn before its turn
                    if not self._waiting:
                        self._running, ended = False, True
                        return
                    ticket, source, edge = self._waiting.popleft()
                read = _read(source, edge)
                if read is None:
                    self._bus.post(PictureUnread(ticket, source))
                else:
                    self._bus.post(PictureRead(ticket, source, *read))
        finally:
            if not ended:
                # A worker that dies (a post that raised) must not leave the flag set: no
                # request would start another, and no picture would load until a restart.
                with self._lock:
                    self._running = False

    # -- the main thread --------------------------------------------------------------

    def _arrived(self, event: PictureRead) -> None:
        with self._lock:
            owner = self._wanted.pop(event.ticket, None)
        thumbnail = owner() if owner is not None else None
        if thumbnail is None or thumbnail.source != event.source:
            return
        texture = Texture.create(size=event.size, colorfmt="rgba")
        texture.blit_buffer(event.pixels, colorfmt="rgba", bufferfmt="ubyte")
        texture.flip_vertical()  # the file's rows run top first, OpenGL's bottom first
        self.read += 1
        thumbnail.show(event.ticket, texture)

    def _missed(self, event: PictureUnread) -> None:
        with self._lock:
            owner = self._wanted.pop(event.ticket, None)
        thumbnail = owner() if owner is not None else None
        if thumbnail is not None:
            thumbnail.missed(event.ticket)


def _read(source: str, edge: int) -> tuple[tuple[int, int], bytes] | None:
    """The picture at `source` as RGBA pixels at most `edge` a side; None if unreadable."""
    from PIL import Image as PillowImage

    try:
        with PillowImage.open(source, formats=("JPEG", "PNG")) as picture:
            picture.draft("RGB", (edge, edge))  # JPEG: decoded at 1/2, 1/4 or 1/8 size
            picture.thumbnail((edge, edge))
            rgba = picture.convert("RGBA")
            return rgba.size, rgba.tobytes()
    except FileNotFoundError:
        log.debug("picture %s is not there (yet): placeholder", source)
    # Whatever is wrong with a file (a corrupt one fails in many ways), the row shows the
    # placeholder; the catalog sync checked it once, so this is a disk's doing.
    except Exception as err:
        log.warning("picture %s unreadable, placeholder shown: %s", source, err)
    return None


class Thumbnail(Image):
    """A product's picture in a list row; `source` is its file ("" for none).

    `edge` is the size in pixels it is read at. The picture loads while the row is in its
    list and is let go when the row leaves it or gets another file (see the module).
    """

    edge = NumericProperty(64)

    def __init__(self, **kwargs: Any) -> None:
        self._ticket = 0
        self._row: Widget | None = None
        super().__init__(**kwargs)

    def texture_update(self, *_args: Any) -> None:
        """Kivy calls this when `source` changes: read the new file off the main thread."""
        self.release()
        self._load()

    def release(self) -> None:
        """Let the texture go and withdraw a read still waiting."""
        loader = _loader()
        if self._ticket and loader is not None:
            loader.withdraw(self._ticket)
        self._ticket = 0
        self.texture = None

    def show(self, ticket: int, texture: Texture) -> None:
        """The loader's answer to request `ticket` (the main thread)."""
        if ticket == self._ticket:
            self._ticket = 0
            self.texture = texture

    def missed(self, ticket: int) -> None:
        """The loader could not read request `ticket` (main thread): asked again when next shown."""
        if ticket == self._ticket:
            self._ticket = 0

    def on_parent(self, _widget: Widget, parent: Widget | None) -> None:
        # A list row comes and goes from its list as it scrolls in and out of view, and
        # the row holds the thumbnail: follow the row.
        if self._row is not None:
            self._row.unbind(parent=self._row_moved)
        self._row = parent
        if parent is not None:
            parent.bind(parent=self._row_moved)

    def _row_moved(self, _row: Widget, holder: Widget | None) -> None:
        if holder is None:
            self.release()
        elif self.texture is None and not self._ticket:
            self._load()

    def _load(self) -> None:
        loader = _loader()
        if not self.source or loader is None or not self._in_a_list():
            return
        self._ticket = loader.request(self, self.source, max(1, int(self.edge)))

    def _in_a_list(self) -> bool:
        return self._row is not None and self._row.parent is not None


def _loader() -> PictureLoader | None:
    """The running app's picture loader (None while no app runs: a widget built alone)."""
    from kivy.app import App

    app = App.get_running_app()
    presenters = getattr(app, "presenters", None)
    return getattr(presenters, "pictures", None)
