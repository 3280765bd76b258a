"""`filter`: drops events by table, or keeps only the rows that match a column predicate.

The Python port of `transforms/filter` (Rust); both give the same output for the same events.

Config:
- `drop_tables`: comma-separated `schema.table` (or `schema.*`) whose events are dropped;
- `column`, `op`, `value`: keep an event only when `column op value` holds. `op` is one of
  `==`, `!=`, `<`, `<=`, `>`, `>=`, `contains`. Numbers compare as numbers, the rest as text.
  A row where the column is NULL or missing does not match.

A table-level `truncate` event (no row) is dropped by `drop_tables` when its table is listed,
and otherwise passes: a row predicate cannot judge it.
"""

import math
import re
from decimal import Decimal

import sluice
from sluice import Float32, Json, Kind
from sluice.values import contract_text, float_text

OPS = {"==": "eq", "=": "eq", "eq": "eq", "!=": "ne", "ne": "ne", "<": "lt", "lt": "lt",
       "<=": "le", "le": "le", ">": "gt", "gt": "gt", ">=": "ge", "ge": "ge",
       "contains": "contains"}

# What Rust's `str::parse::<f64>` accepts (ASCII digits only).
F64 = re.compile(r"[+-]?((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|inf|infinity|nan)\Z",
                 re.IGNORECASE | re.ASCII)


def parse_f64(text):
    return float(text) if F64.match(text) else None


@sluice.transform
class Filter:
    def __init__(self, config: sluice.Config):
        self.drop_tables = sluice.Interest(config.list("drop_tables"))
        self.predicate = None
        column = config.get("column")
        if column is not None:
            op = config.require("op")
            if op not in OPS:
                raise sluice.Error(f'unknown op "{op}": use ==, !=, <, <=, >, >= or contains')
            self.predicate = (column, OPS[op], config.require("value"))
        if not self.drop_tables.tables and self.predicate is None:
            raise sluice.Error("set `drop_tables` and/or `column`, `op` and `value`")
        # The predicate's value as a number, parsed once.
        self.want_num = parse_f64(self.predicate[2]) if self.predicate else None

    def interest(self):
        # Only the predicate's column crosses into the sandbox (none when filtering by table).
        if self.predicate:
            return sluice.Interest.columns([self.predicate[0]])
        return sluice.Interest.no_columns()

    def process(self, event: sluice.Event):
        if self.drop_tables.tables and self.drop_tables.matches_table(event.schema, event.table):
            event.drop_event()
            return
        if event.kind is Kind.TRUNCATE or self.predicate is None:
            return
        column, op, want = self.predicate
        if not matches(event.get(column), op, want, self.want_num):
            event.drop_event()


def as_f64(v):
    """A number of any kind as a float (DECIMAL parsed), as the Rust SDK's `Value::as_f64`."""
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, Decimal):
        return float(v)
    return None


def text_of(v):
    """The value's contract JSON text with surrounding quotes trimmed (Rust:
    `json::value(v).to_string().trim_matches('"')`)."""
    if isinstance(v, float):
        return float_text(v, 32 if isinstance(v, Float32) else 64)
    if isinstance(v, int):
        return str(v)
    return contract_text(v)


def matches(v, op, want, want_num):
    if v is None:
        return False
    if op == "contains":
        if isinstance(v, Json):
            return want in v.text
        if isinstance(v, str):
            return want in v
        if isinstance(v, Decimal):
            return want in format(v, "f")
        return False
    a = as_f64(v) if want_num is not None else None
    if a is not None:
        if math.isnan(a) or math.isnan(want_num):
            return False
        ord_ = (a > want_num) - (a < want_num)
    else:
        if isinstance(v, str):
            have = v
        elif isinstance(v, Decimal):
            have = format(v, "f")
        elif isinstance(v, Json):
            have = v.text
        else:
            have = text_of(v).strip('"')
        # Python compares strings by code point: the order of their UTF-8 bytes, as Rust does.
        ord_ = (have > want) - (have < want)
    return {"eq": ord_ == 0, "ne": ord_ != 0, "lt": ord_ < 0, "le": ord_ <= 0,
            "gt": ord_ > 0, "ge": ord_ >= 0}[op]
