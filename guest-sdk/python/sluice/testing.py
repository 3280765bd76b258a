"""The native test harness: run a transform under plain CPython (pytest), with the host's
semantics (table interest, column projection, edits) and no wasm.

    from sluice.testing import Harness, TestEvent

    def test_redacts():
        h = Harness(Redact, {"column": "email"})
        out = h.run([TestEvent.insert("shop", "users", {"id": 1, "email": "a@b.c"})])
        assert out[0].get("email") == "<redacted>"
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from . import _edit
from .event import Config, Error, Event, Interest, Kind, Op, Position, Table, interest_of
from .values import normalize, to_json

__all__ = ["Harness", "TestEvent", "Output"]

#: Ops that carry a value.
_VALUED = (Op.SET_AFTER, Op.SET_BEFORE, Op.ADD_COLUMN)


def _split(cols) -> Tuple[List[str], List[Any]]:
    if isinstance(cols, dict):
        cols = cols.items()
    names, values = [], []
    for c, v in cols:
        names.append(c)
        values.append(normalize(v))
    return names, values


@dataclass
class TestEvent:
    """An input event for tests (primary key: the first column)."""

    __test__ = False  # not a pytest test class

    kind: Kind
    schema: str
    table: str
    columns: List[str]
    primary_key: List[int]
    after: List[Any]
    before: List[Any]

    @classmethod
    def insert(cls, schema: str, table: str, cols) -> "TestEvent":
        names, after = _split(cols)
        return cls(Kind.INSERT, schema, table, names, [0], after, [])

    @classmethod
    def snapshot_insert(cls, schema: str, table: str, cols) -> "TestEvent":
        names, after = _split(cols)
        return cls(Kind.SNAPSHOT_INSERT, schema, table, names, [0], after, [])

    @classmethod
    def update(cls, schema: str, table: str, before, after) -> "TestEvent":
        names, a = _split(after)
        _, b = _split(before)
        return cls(Kind.UPDATE, schema, table, names, [0], a, b)

    @classmethod
    def delete(cls, schema: str, table: str, before) -> "TestEvent":
        names, b = _split(before)
        return cls(Kind.DELETE, schema, table, names, [0], [], b)

    @classmethod
    def truncate(cls, schema: str, table: str) -> "TestEvent":
        """A table-level `truncate` event: no columns, no values."""
        return cls(Kind.TRUNCATE, schema, table, [], [], [], [])

    @classmethod
    def from_json(cls, line: str) -> "TestEvent":
        """One event in the contract's JSON format, read and checked as `sluice transform test`
        reads it (`sluice_contract::json::parse_event`)."""
        v = json.loads(line, parse_constant=_no_constant)
        kind = Kind(v["kind"])
        empty = lambda x: not x
        if kind is Kind.TRUNCATE:
            if not (empty(v.get("columnnames")) and empty(v.get("columnvalues"))
                    and empty(v.get("oldkeys"))):
                raise Error('a "truncate" event has no row: its columnnames and columnvalues '
                            "must be [] and its oldkeys {}")
            return cls.truncate(v["schema"], v["table"])
        old = v.get("oldkeys") or {}
        names = v.get("columnnames") or old.get("keynames") or []
        after = [] if kind is Kind.DELETE else [_from_json(x) for x in v.get("columnvalues", [])]
        before = [_from_json(x) for x in old.get("keyvalues", [])]
        for image, what, needed in ((after, "columnvalues", kind is not Kind.DELETE),
                                    (before, "oldkeys.keyvalues",
                                     kind in (Kind.UPDATE, Kind.DELETE))):
            if needed and len(image) != len(names):
                raise Error(f"{what} has {len(image)} values for {len(names)} columns: a "
                            f"{kind.value} event's row images list every column")
        return cls(kind, v["schema"], v["table"], list(names), [0], after, before)


def _no_constant(name):
    raise Error(f"not JSON: {name}")


def _from_json(x):
    # As sluice_contract::json::from_json: booleans 0/1, integers past 64 bits doubles, objects
    # and arrays JSON.
    if isinstance(x, bool):
        return int(x)
    if isinstance(x, int) and not -(1 << 63) <= x < (1 << 64):
        return float(x)
    if isinstance(x, (dict, list)):
        return normalize(x)
    return x


@dataclass
class Output:
    """One published event."""

    kind: Kind
    schema: str
    table: str
    columns: List[str]
    #: Indexes into `columns` of the primary key (re-numbered when columns are removed).
    primary_key: List[int]
    after: List[Any]
    before: List[Any]
    topic: Optional[str] = None
    key: Optional[bytes] = None
    headers: List[Tuple[str, bytes]] = field(default_factory=list)
    payload: Optional[bytes] = None

    def get(self, column: str, default: Any = None) -> Any:
        """A column of the row after the change (before it, for a delete)."""
        if column not in self.columns:
            return default
        i = self.columns.index(column)
        image = self.before if self.kind is Kind.DELETE else self.after
        return image[i] if i < len(image) else default

    def value_json(self) -> Any:
        """The message value: the payload if the transform set one (parsed when it is JSON),
        else the contract's event JSON."""
        if self.payload is not None:
            try:
                return json.loads(self.payload)
            except ValueError:
                return self.payload.decode("utf-8", "replace")
        no_row = self.kind in (Kind.DELETE, Kind.TRUNCATE)
        ev: Dict[str, Any] = {
            "kind": self.kind.value,
            "schema": self.schema,
            "table": self.table,
            "columnnames": [] if no_row else list(self.columns),
            "columnvalues": [] if no_row else [to_json(v) for v in self.after],
            "oldkeys": {},
        }
        if self.kind in (Kind.UPDATE, Kind.DELETE):
            ev["oldkeys"] = {"keynames": list(self.columns),
                             "keyvalues": [to_json(v) for v in self.before]}
        return ev

    def envelope_json(self) -> Dict[str, Any]:
        """The form `sluice transform test --envelope` prints: routing plus the value."""
        text = lambda b: None if b is None else b.decode("utf-8", "replace")
        return {
            "topic": self.topic,
            "key": text(self.key),
            "headers": [[k, text(v)] for k, v in self.headers],
            "value": self.value_json(),
        }


class Harness:
    """Runs a transform class natively, as the host would."""

    def __init__(self, cls, config=()):
        self.transform = cls(Config(config))
        self.interest: Interest = interest_of(self.transform)

    def run(self, events) -> List[Output]:
        """The published events for `events`, in order."""
        out: List[Output] = []
        for n, ev in enumerate(events):
            if not self.interest.matches_table(ev.schema, ev.table):
                out.append(_apply(ev, []))
                continue
            projection = self.interest.projection(ev.columns)
            table = Table(ev.schema, ev.table, ev.columns, ev.primary_key, projection)
            pick = lambda image: [copy.deepcopy(image[i]) for i in projection] if image else []
            event = Event(table, ev.kind, pick(ev.after), pick(ev.before), Position(0, n))
            self.transform.process(event)
            outputs = event.outputs()
            if not outputs:
                out.append(_apply(ev, []))
            for ops in outputs:
                o = _apply(ev, ops)
                if o is not None:
                    out.append(o)
        return out


def _apply(ev: TestEvent, ops) -> Optional[Output]:
    # Values are checked as the component's encoder checks them.
    ops = [(op[0], op[1], normalize(op[2])) if op[0] in _VALUED else op for op in ops]
    err = _edit.check(ev.kind, ev.columns, ops)
    if err is not None:
        raise Error(err)
    o = Output(ev.kind, ev.schema, ev.table, list(ev.columns), list(ev.primary_key),
               list(ev.after), list(ev.before))
    return o if _edit.apply(o, ops) else None
