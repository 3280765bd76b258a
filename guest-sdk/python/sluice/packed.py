"""Reading the packed request: the batch's event views and cells (`wit/transform.wit` gives the
layout; `sluice_contract::packed` writes it on the host's side).

Design note: the request carries views and cells as fixed-layout little-endian records in
`bytes`, so a batch crosses the boundary in a few copies; here each is read with a precompiled
`struct`. Each event's row images are decoded when its turn comes, and only the projected
cells (the transform's interest) are there to decode.
"""

from __future__ import annotations

import struct
from decimal import Decimal

from .event import KINDS
from .values import Date, DateTime, Float32, Json, Time, Timestamp

#: Bytes of one packed event view, and of one packed cell.
VIEW_BYTES = 36
CELL_BYTES = 16

_VIEW = struct.Struct("<B3xIQIIIII")
_I64 = struct.Struct("<q")
_U64 = struct.Struct("<Q")
_F32 = struct.Struct("<f")
_F64 = struct.Struct("<d")
_SPAN = struct.Struct("<II")
_DATE = struct.Struct("<HBB")
_DATETIME = struct.Struct("<HBBBBIBB")
_TIMESTAMP = struct.Struct("<B2xIq")
_TIME = struct.Struct("<BBBIIB")


def read_view(events: bytes, i: int):
    """The i-th view: (kind, table id, pos, row, after_start, after_len, before_start, before_len)."""
    kind, table, pos, row, a0, an, b0, bn = _VIEW.unpack_from(events, i * VIEW_BYTES)
    if kind >= len(KINDS):
        raise ValueError(f"unknown event kind {kind}")
    return KINDS[kind], table, pos, row, a0, an, b0, bn


def _span(cells, at, data) -> bytes:
    start, n = _SPAN.unpack_from(cells, at + 8)
    if start + n > len(data):
        raise ValueError(f"a span {start}+{n} beyond its {len(data)} bytes")
    return data[start:start + n]


def read_cell(cells: bytes, i: int, data: bytes):
    """The i-th cell as a Python value (see `sluice.values`)."""
    at = i * CELL_BYTES
    tag = cells[at]
    if tag == 0:
        return None
    if tag == 1:
        return _I64.unpack_from(cells, at + 8)[0]
    if tag == 2:
        return _U64.unpack_from(cells, at + 8)[0]
    if tag == 6:
        return _span(cells, at, data).decode("utf-8")
    if tag == 5:
        return Decimal(_span(cells, at, data).decode("ascii"))
    if tag == 4:
        return _F64.unpack_from(cells, at + 8)[0]
    if tag == 3:
        return Float32(_F32.unpack_from(cells, at + 8)[0])
    if tag == 7:
        return bytes(_span(cells, at, data))
    if tag == 12:
        return Json(_span(cells, at, data).decode("utf-8"))
    if tag == 8:
        return Date(*_DATE.unpack_from(cells, at + 2))
    if tag == 9:
        y, mo, d, h, mi, micros, s, fsp = _DATETIME.unpack_from(cells, at + 2)
        return DateTime(y, mo, d, h, mi, s, micros, fsp)
    if tag == 10:
        fsp, micros, secs = _TIMESTAMP.unpack_from(cells, at + 1)
        return Timestamp(secs, micros, fsp)
    if tag == 11:
        neg, fsp, minutes, hours, micros, seconds = _TIME.unpack_from(cells, at + 1)
        return Time(bool(neg), hours, minutes, seconds, micros, fsp)
    raise ValueError(f"unknown cell tag {tag}")


def read_image(cells: bytes, start: int, n: int, data: bytes) -> list:
    if (start + n) * CELL_BYTES > len(cells):
        raise ValueError("cell range out of bounds")
    return [read_cell(cells, i, data) for i in range(start, start + n)]
