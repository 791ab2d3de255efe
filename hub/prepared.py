"""Statements whose SQL peewee renders once per shape; later runs only bind new values.

peewee renders a query's SQL on every execution by walking its expression tree, and for
the few small statements the hub runs per sales batch that walk cost several times the
database's own work. A statement's SQL depends on its shape (which columns, how many
values in an IN list), not on its values, so each shape is rendered once and reused.

The caller gives the values in the order peewee binds them. The first run of each shape
renders peewee's own query and compares its parameters with the caller's: on any
difference (peewee added a default, or ordered the values otherwise) peewee's query runs
every time for that shape, and a warning says so. So a mistake costs speed, never data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from peewee import Database, Query

log = logging.getLogger(__name__)

_UNSEEN = object()
# Shapes kept per database: IN lists make one per length, and a device choosing odd batch
# shapes must not grow the cache without end; past this, new shapes are rendered each time.
MAX_SHAPES = 2048


class Prepared:
    """Runs statements for one database, rendering each shape's SQL once; thread-safe.

    Two threads rendering the same shape at once both store the same text.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._sql: dict[Hashable, str | None] = {}  # None: peewee renders it each time

    def execute(self, shape: Hashable, params: Sequence[Any], build: Callable[[], Query]) -> Any:
        """Run the statement `build` makes with `params` bound; returns the DB-API cursor.

        `shape` names the SQL text (the same shape must always render the same SQL);
        `build` is only called the first time, or when the shape proved unsafe.
        """
        sql = self._sql.get(shape, _UNSEEN)
        if sql is _UNSEEN and len(self._sql) >= MAX_SHAPES:
            return self._db.execute(build())
        if sql is _UNSEEN:
            query = build()
            sql, expected = self._db.get_sql_context().sql(query).query()
            if list(expected) != list(params):
                log.warning(
                    "statement %r binds %r, not %r: peewee renders it each time",
                    shape,
                    expected,
                    params,
                )
                sql = None
            self._sql[shape] = sql
        if sql is None:
            return self._db.execute(build())
        return self._db.execute_sql(str(sql), list(params))

    def rows(self, shape: Hashable, params: Sequence[Any], build: Callable[[], Query]) -> list[Any]:
        """The rows (tuples) a SELECT returns."""
        return list(self.execute(shape, params, build).fetchall())

    def count(self, shape: Hashable, params: Sequence[Any], build: Callable[[], Query]) -> int:
        """How many rows an INSERT, UPDATE or DELETE touched."""
        return int(self._db.rows_affected(self.execute(shape, params, build)))

    def shapes(self) -> int:
        """How many shapes are kept (rendered, or found unsafe)."""
        return len(self._sql)

    def unsafe(self) -> list[Hashable]:
        """The shapes peewee renders each time because their parameters did not match."""
        return [shape for shape, sql in self._sql.items() if sql is None]
