"""Catch SQL run on one thread: what a handler on the main loop reads from the database."""

from __future__ import annotations

import threading
from typing import Any

from peewee import SqliteDatabase


class ThreadSql:
    """Every SQL statement this thread runs on `db`: its connection traced, execute_sql wrapped.

    Use it as a context manager on the thread to watch; statements of other threads pass.
    """

    def __init__(self, db: SqliteDatabase) -> None:
        self.statements: list[str] = []
        self._db = db
        self._thread = threading.get_ident()
        self._execute_sql = db.execute_sql

    def __enter__(self) -> ThreadSql:
        self._db.connection().set_trace_callback(self.statements.append)
        self._db.execute_sql = self._counted  # type: ignore[method-assign]
        return self

    def __exit__(self, *_exc: object) -> None:
        self._db.connection().set_trace_callback(None)
        self._db.execute_sql = self._execute_sql  # type: ignore[method-assign]

    def _counted(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        # The trace already sees this thread's statements; this catches a second connection.
        if threading.get_ident() == self._thread:
            self.statements.append(sql)
        return self._execute_sql(sql, *args, **kwargs)
