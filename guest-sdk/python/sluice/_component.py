"""The component side: the `WitWorld` class that componentize-py exports, driving an author's
transform class over the WIT's packed batches and answering with its edits.

Design note: the author's object (built by `init`) lives in this module's `_STATE`, which the
component's memory keeps from one call to the next, whatever `WitWorld` objects componentize-py
makes (older versions made one per call, which lost state kept on them). Every exception is caught and answered as the WIT's `err`: a
`sluice.Error` with its message alone, any other with its type, message and traceback, which
the host reports with the failing event's position. This module imports the generated
`wit_world` bindings, which exist only while componentize-py builds the component.
"""

from __future__ import annotations

import traceback
from decimal import Decimal

from wit_world import log as _host_log

from . import packed
from .event import Config, Error, Event, Op, Position, Table, interest_of
from .values import Date, DateTime, Float32, Json, Time, Timestamp, normalize

import componentize_py_types as _cpt  # noqa: E402  (present at build time only)
from wit_world.imports import types as wit  # noqa: E402


def _err(text: str) -> "_cpt.Err":
    """The WIT `err`: a string that lowers (a lone surrogate in an exception's text would make
    the component trap instead)."""
    return _cpt.Err(text.encode("utf-8", "backslashreplace").decode("utf-8"))

_I64_MAX = (1 << 63) - 1


class _State:
    transform = None
    tables: dict = {}


_STATE = _State()


def describe(exc: BaseException) -> str:
    """The error text of an exception: a `sluice.Error`'s message alone; for any other, its
    type and message first, then the traceback."""
    if isinstance(exc, Error):
        return str(exc)
    head = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    # The traceback starts at the author's code: the SDK's own frame above it says nothing.
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None and \
            tb.tb_frame.f_code.co_filename.endswith("_component.py"):
        tb = tb.tb_next
    text = "".join(traceback.format_exception(type(exc), exc, tb)).rstrip()
    return f"{head}\n{text}"


class _Answer:
    """Builds the WIT `edits`."""

    __slots__ = ("outputs", "ops", "cells", "data")

    def __init__(self):
        self.outputs, self.ops, self.cells, self.data = [], [], [], bytearray()

    def span(self, b: bytes):
        start = len(self.data)
        self.data += b
        return wit.Span(start, len(b))

    def cell(self, v) -> int:
        v = normalize(v)
        if v is None:
            c = wit.Cell_Null()
        elif isinstance(v, int):
            c = wit.Cell_Int(v) if v <= _I64_MAX else wit.Cell_Uint(v)
        elif isinstance(v, str):
            c = wit.Cell_Text(self.span(v.encode("utf-8")))
        elif isinstance(v, Float32):
            c = wit.Cell_Float(float(v))
        elif isinstance(v, float):
            c = wit.Cell_Double(v)
        elif isinstance(v, Decimal):
            c = wit.Cell_Decimal(self.span(format(v, "f").encode("ascii")))
        elif isinstance(v, bytes):
            c = wit.Cell_Bytes(self.span(v))
        elif isinstance(v, Json):
            c = wit.Cell_Json(self.span(v.dumps().encode("utf-8")))
        elif isinstance(v, Date):
            c = wit.Cell_Date(wit.Date(v.year, v.month, v.day))
        elif isinstance(v, DateTime):
            c = wit.Cell_Datetime(wit.Datetime(v.year, v.month, v.day, v.hour, v.minute,
                                               v.second, v.micros, v.fsp))
        elif isinstance(v, Timestamp):
            c = wit.Cell_Timestamp(wit.Timestamp(v.secs, v.micros, v.fsp))
        else:  # Time: normalize returned one of the SDK's types
            c = wit.Cell_Time(wit.Time(v.negative, v.hours, v.minutes, v.seconds, v.micros, v.fsp))
        self.cells.append(c)
        return len(self.cells) - 1

    def output(self, event: int, ops) -> None:
        start = len(self.ops)
        for op in ops:
            code = op[0]
            if code == Op.DROP:
                o = wit.Op_Drop()
            elif code == Op.SET_AFTER:
                o = wit.Op_SetAfter((op[1], self.cell(op[2])))
            elif code == Op.SET_BEFORE:
                o = wit.Op_SetBefore((op[1], self.cell(op[2])))
            elif code == Op.RENAME_COLUMN:
                o = wit.Op_RenameColumn((op[1], self.span(op[2].encode("utf-8"))))
            elif code == Op.DROP_COLUMN:
                o = wit.Op_DropColumn(op[1])
            elif code == Op.ADD_COLUMN:
                name = self.span(op[1].encode("utf-8"))
                o = wit.Op_AddColumn((name, self.cell(op[2])))
            elif code == Op.SET_TOPIC:
                o = wit.Op_SetTopic(self.span(op[1].encode("utf-8")))
            elif code == Op.SET_KEY:
                o = wit.Op_SetKey(self.span(op[1]))
            elif code == Op.ADD_HEADER:
                o = wit.Op_AddHeader((self.span(op[1].encode("utf-8")), self.span(op[2])))
            else:
                o = wit.Op_SetPayload(self.span(op[1]))
            self.ops.append(o)
        self.outputs.append(wit.Output(event, start, len(self.ops) - start))


def world(cls):
    """The `WitWorld` class for the transform class `cls`."""

    class WitWorld:
        def init(self, config):
            try:
                obj = cls(Config(config))
                interest = interest_of(obj)
            except BaseException as e:  # noqa: B036 (every failure is the WIT's err)
                raise _err(describe(e))
            _STATE.transform = obj
            _STATE.tables = {}
            return wit.Interest(list(interest.tables),
                                None if interest.columns is None else list(interest.columns))

        def transform(self, tables, events, cells, data):
            obj = _STATE.transform
            if obj is None:
                raise _err("transform called before init")
            known = _STATE.tables
            for t in tables:
                known[t.id] = Table(t.schema, t.table, t.columns, t.primary_key, t.projection)
            if len(events) % packed.VIEW_BYTES or len(cells) % packed.CELL_BYTES:
                raise _err("events or cells are not whole packed records")
            answer = _Answer()
            process = obj.process
            try:
                for i in range(len(events) // packed.VIEW_BYTES):
                    kind, tid, pos, row, a0, an, b0, bn = packed.read_view(events, i)
                    table = known.get(tid)
                    if table is None:
                        raise Error(f"unknown table id {tid}")
                    ev = Event(table, kind, packed.read_image(cells, a0, an, data),
                               packed.read_image(cells, b0, bn, data), Position(pos, row))
                    process(ev)
                    outputs = ev.outputs()
                    for ops in outputs:
                        answer.output(i, ops)
            except BaseException as e:  # noqa: B036
                raise _err(describe(e))
            return wit.Edits(answer.outputs, answer.ops, answer.cells, bytes(answer.data))

    return WitWorld


def log(level: int, message: str) -> None:
    """Sends a message to the host's log."""
    text = str(message).encode("utf-8", "backslashreplace").decode("utf-8")
    _host_log(wit.LogLevel(level), text)
