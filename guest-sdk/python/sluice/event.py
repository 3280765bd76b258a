"""The author-facing event API: `Event`, `Config`, `Interest`, `Kind`, and the ops an event
records.

Design note: this module is pure Python with no wasm in sight, so the same transform code runs
in the component (`sluice._component` drives it) and under plain CPython in `pytest`
(`sluice.testing`). It mirrors the Rust SDK (`guest-sdk/src/lib.rs`) method for method: an
event records *ops* against its input, and an event with no op is published unchanged.
"""

from __future__ import annotations

import enum
from typing import Any, Iterable, List, NamedTuple, Optional, Sequence, Tuple

__all__ = ["Config", "Interest", "Kind", "Position", "Table", "Event", "Error", "Op"]


class Error(Exception):
    """Raise it to fail the batch with exactly this message (no traceback): the transform's
    failure policy decides what happens next. Any other exception fails it too, with its type,
    message and traceback."""


class Kind(str, enum.Enum):
    """What happened to the row; the value is the contract's `kind` string."""

    SNAPSHOT_INSERT = "snapshot_insert"
    INSERT = "insert"
    UPDATE = "update"
    DELETE = "delete"
    TRUNCATE = "truncate"

    def __str__(self):
        return self.value


#: The WIT `kind` enum's index → `Kind`.
KINDS = (Kind.SNAPSHOT_INSERT, Kind.INSERT, Kind.UPDATE, Kind.DELETE, Kind.TRUNCATE)


class Position(NamedTuple):
    """Where an event came from: its transaction's start in the binlog, and its row in it."""

    pos: int
    row: int


class Config:
    """A transform's configuration: the key/value pairs of its `[[transforms]]` config (or
    `--set` in `sluice transform test`). A key given twice: the last value wins."""

    __slots__ = ("pairs",)

    def __init__(self, pairs: Iterable[Tuple[str, str]] = ()):
        if isinstance(pairs, dict):
            pairs = pairs.items()
        self.pairs: List[Tuple[str, str]] = [(str(k), str(v)) for k, v in pairs]

    def get(self, key: str, default: Optional[str] = None) -> Optional[str]:
        for k, v in reversed(self.pairs):
            if k == key:
                return v
        return default

    def require(self, key: str) -> str:
        """A required key; raises `Error` naming it when absent."""
        v = self.get(key)
        if v is None:
            raise Error(f'the transform needs the config key "{key}"')
        return v

    def list(self, key: str) -> List[str]:
        """A comma-separated list, trimmed, empty items left out (empty when the key is absent)."""
        v = self.get(key)
        if v is None:
            return []
        return [s.strip() for s in v.split(",") if s.strip()]

    def __repr__(self):
        return f"Config({self.pairs!r})"


class _Columns:
    """`Interest.columns([...])` builds an interest, as the Rust SDK's `Interest::columns` does;
    on an instance, `columns` is the list of column names (or None)."""

    def __get__(self, obj, cls):
        if obj is None:
            return cls.columns_only
        return obj._columns

    def __set__(self, obj, value):
        obj._columns = value


class Interest:
    """What a transform needs to see: which tables reach it (`schema.table`, `schema.*`, or a
    bare table name; none: every table) and which columns' values cross into the sandbox
    (`None`: every column)."""

    __slots__ = ("tables", "_columns")
    columns = _Columns()

    def __init__(self, tables: Sequence[str] = (), columns: Optional[Sequence[str]] = None):
        self.tables = list(tables)
        self.columns = None if columns is None else list(columns)

    @classmethod
    def all(cls) -> "Interest":
        return cls()

    @classmethod
    def columns_only(cls, columns: Iterable[str]) -> "Interest":
        """Only these columns (of every table): `Interest::columns` in Rust."""
        return cls((), list(columns))

    @classmethod
    def no_columns(cls) -> "Interest":
        """No column values at all (for transforms that decide by table only)."""
        return cls((), [])

    def with_tables(self, tables: Iterable[str]) -> "Interest":
        """Only these tables (`schema.table` or `schema.*`)."""
        return Interest(list(tables), self.columns)

    def matches_table(self, schema: str, table: str) -> bool:
        """Whether events of `schema.table` reach the transform (as the host decides)."""
        if not self.tables:
            return True
        for t in self.tables:
            s, dot, n = t.partition(".")
            if not dot:
                if t == table:
                    return True
            elif n == "*":
                if s == schema:
                    return True
            elif s == schema and n == table:
                return True
        return False

    def projection(self, columns: Sequence[str]) -> List[int]:
        """The indexes of the columns whose values the transform sees, in table order."""
        if self.columns is None:
            return list(range(len(columns)))
        want = set(self.columns)
        return [i for i, c in enumerate(columns) if c in want]

    def __repr__(self):
        return f"Interest(tables={self.tables!r}, columns={self.columns!r})"


def interest_of(obj) -> Interest:
    """What a transform object declares it needs: its `interest()` (or `interest` attribute),
    else every table and column. The component and the harness both ask through this."""
    i = getattr(obj, "interest", None)
    if i is None:
        return Interest.all()
    i = i() if callable(i) else i
    if not isinstance(i, Interest):
        raise Error(f"interest() returned a {type(i).__name__}; return a sluice.Interest")
    for what, names in (("tables", i.tables), ("columns", i.columns or [])):
        if not all(isinstance(n, str) for n in names):
            raise Error(f"the interest's {what} must be strings: {names!r}")
    return i


class Op:
    """The ops an event records (tuples whose first item is one of these codes), in the WIT's
    `op` order. Column indexes refer to the input table's columns."""

    DROP = 0
    SET_AFTER = 1
    SET_BEFORE = 2
    RENAME_COLUMN = 3
    DROP_COLUMN = 4
    ADD_COLUMN = 5
    SET_TOPIC = 6
    SET_KEY = 7
    ADD_HEADER = 8
    SET_PAYLOAD = 9


class Table:
    """A table version as the host describes it, with the column → value slot map."""

    __slots__ = ("schema", "table", "columns", "primary_key", "index", "slots")

    def __init__(self, schema: str, table: str, columns: Sequence[str],
                 primary_key: Sequence[int], projection: Sequence[int]):
        self.schema = schema
        self.table = table
        self.columns = list(columns)
        self.primary_key = list(primary_key)
        # Name → index in `columns` (the first of a name), and index → slot in the event's
        # projected values.
        self.index = {}
        for i, c in enumerate(self.columns):
            self.index.setdefault(c, i)
        self.slots = {col: slot for slot, col in enumerate(projection)}


def _bytes(v: Any, what: str) -> bytes:
    if isinstance(v, str):
        return v.encode("utf-8")
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    raise TypeError(f"{what} must be str or bytes, not {type(v).__name__}")


class Event:
    """A change event as a transform sees it, plus the changes the transform records.

    `get` sees only the columns of the transform's interest. Record changes with the methods;
    an event you do not touch is published unchanged (and not even copied out of the sandbox).
    """

    __slots__ = ("_table", "kind", "_after", "_before", "position", "_ops", "_done")

    def __init__(self, table: Table, kind: Kind, after: list, before: list, position: Position):
        self._table = table
        self.kind = kind
        self._after = after
        self._before = before
        self.position = position
        self._ops: list = []
        self._done: list = []

    @property
    def schema(self) -> str:
        return self._table.schema

    @property
    def table(self) -> str:
        return self._table.table

    @property
    def columns(self) -> List[str]:
        """Every column of the table, in table order."""
        return self._table.columns

    @property
    def primary_key(self) -> List[int]:
        """Indexes into `columns` of the primary key."""
        return self._table.primary_key

    def _slot(self, column: str) -> Optional[int]:
        i = self._table.index.get(column)
        return None if i is None else self._table.slots.get(i)

    def get(self, column: str, default: Any = None) -> Any:
        """The column's value in the row after the change (before it, for a delete). `default`
        when the column does not exist or is not in the transform's interest; a NULL is None."""
        s = self._slot(column)
        image = self._before if self.kind is Kind.DELETE else self._after
        if s is None or s >= len(image):
            return default
        return image[s]

    def get_before(self, column: str, default: Any = None) -> Any:
        """The column's value in the row before the change (update and delete)."""
        s = self._slot(column)
        if s is None or s >= len(self._before):
            return default
        return self._before[s]

    def has(self, column: str) -> bool:
        """Whether `get(column)` sees a value (the column exists and is in the interest)."""
        return self._slot(column) is not None

    def _column(self, column: str) -> int:
        i = self._table.index.get(column)
        if i is None:
            raise Error(f'{self.schema}.{self.table} has no column "{column}"')
        return i

    def set(self, column: str, value: Any) -> None:
        """Sets a column (in the row after the change; in the row before it for a delete)."""
        i = self._column(column)
        delete = self.kind is Kind.DELETE
        s = self._table.slots.get(i)
        image = self._before if delete else self._after
        if s is not None and s < len(image):
            image[s] = value
        self._ops.append((Op.SET_BEFORE if delete else Op.SET_AFTER, i, value))

    def set_before(self, column: str, value: Any) -> None:
        """Sets a column of the row before the change (update and delete)."""
        self._ops.append((Op.SET_BEFORE, self._column(column), value))

    def drop_event(self) -> None:
        """Leaves this event (the current output) out."""
        self._ops.append((Op.DROP,))

    def rename(self, column: str, new_name: str) -> None:
        """Renames a column in the published event."""
        self._ops.append((Op.RENAME_COLUMN, self._column(column), str(new_name)))

    def remove(self, column: str) -> None:
        """Leaves a column out of the published event."""
        self._ops.append((Op.DROP_COLUMN, self._column(column)))

    def add(self, column: str, value: Any) -> None:
        """Adds a column after the table's, with `value` in each row image the event has. Its
        name must be new; a `truncate` event has no row and takes none."""
        self._ops.append((Op.ADD_COLUMN, str(column), value))
        err = _edit.check(self.kind, self._table.columns, self._ops)
        if err is not None:
            self._ops.pop()
            raise Error(f"{self.schema}.{self.table}: {err}")

    def set_topic(self, topic: str) -> None:
        """Publishes to `topic` instead of the configured topic."""
        self._ops.append((Op.SET_TOPIC, str(topic)))

    def set_key(self, key) -> None:
        """Uses `key` (str or bytes) as the Kafka key."""
        self._ops.append((Op.SET_KEY, _bytes(key, "a key")))

    def add_header(self, key: str, value) -> None:
        self._ops.append((Op.ADD_HEADER, str(key), _bytes(value, "a header value")))

    def set_payload(self, payload) -> None:
        """Publishes `payload` (str or bytes) as the message value instead of the contract's JSON."""
        self._ops.append((Op.SET_PAYLOAD, _bytes(payload, "a payload")))

    def split(self) -> None:
        """Starts another output event: a copy of the input event. Later calls apply to it."""
        self._done.append(self._ops)
        self._ops = []

    def outputs(self) -> list:
        """The recorded outputs (op lists); empty when the event is published unchanged."""
        if not self._done and not self._ops:
            return []
        return self._done + [self._ops]

    def __repr__(self):
        return (f"Event({self.kind.value} {self.schema}.{self.table} at "
                f"{self.position.pos}#{self.position.row})")


# At the end: `_edit` uses `Kind` and `Op` from here. Imported now, at import time, because a
# component cannot import later (componentize-py snapshots the interpreter after the build).
from . import _edit  # noqa: E402
