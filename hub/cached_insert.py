"""A multi-row INSERT ... ON CONFLICT DO NOTHING whose SQL peewee builds once per shape.

peewee renders a statement's SQL on every execution, walking every value of every row
through its expression tree; for a batch of sales that rendering cost more CPU than the
database's own work. The SQL of an insert depends only on the columns and the number of
rows (the values are parameters), so it is rendered once per shape and reused; the
values go through each field's `db_value`, as peewee would pass them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from peewee import Database, Model

_Converter = tuple[str, Callable[[Any], Any]]  # a column and its field's db_value


class CachedInsert:
    """Inserts dict rows into one model's table, skipping conflicts; for one database.

    The first statement of each shape is rendered by peewee and its parameters are
    compared with the ones built here: should peewee add or order columns otherwise
    (a field with a default the rows lack), its own statement runs and nothing is cached.
    """

    def __init__(self, model: type[Model]) -> None:
        self._model = model
        self._sql: dict[tuple[tuple[str, ...], int], str] = {}
        self._columns: dict[frozenset[str], tuple[tuple[str, ...], list[_Converter]]] = {}

    def execute(self, db: Database, rows: Sequence[Mapping[str, Any]]) -> int:
        """Insert the rows (all with the same keys); returns how many were new."""
        if not rows:
            return 0
        keys = frozenset(rows[0])
        found = self._columns.get(keys)
        if found is None:
            meta = self._model._meta
            # In the model's field order, as peewee orders the columns of dict rows.
            columns = tuple(name for name in meta.sorted_field_names if name in keys)
            converters = [(name, meta.fields[name].db_value) for name in columns]
            found = self._columns[keys] = (columns, converters)
        columns, converters = found
        params = [convert(row[column]) for row in rows for column, convert in converters]
        key = (columns, len(rows))
        sql = self._sql.get(key)
        if sql is None:
            query = self._model.insert_many(rows).on_conflict(action="NOTHING").as_rowcount()
            sql, expected = db.get_sql_context().sql(query).query()
            if list(expected) != params:
                return int(query.execute(db))
            self._sql[key] = sql
        return int(db.rows_affected(db.execute_sql(sql, params)))
