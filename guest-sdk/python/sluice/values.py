"""Column values that keep their MySQL type.

Design note: a value read from an event and set back must publish the same JSON, so the types
that Python's own would lose are kept: a FLOAT is a `Float32` (a `float` that remembers it is 32
bits wide), a DECIMAL a `decimal.Decimal` (its digits kept), a JSON document a `Json` (the text
Sluice sent, parsed on demand), and dates and times are the classes below, which hold MySQL's
whole range (zero dates, TIME up to 838 hours) and the column's fractional digits. Each converts
to the `datetime` type where that type can hold it; `str()` gives the contract's text.
"""

from __future__ import annotations

import datetime as _dt
import json as _json
from dataclasses import dataclass

__all__ = ["Float32", "Json", "Date", "DateTime", "Timestamp", "Time", "contract_text"]


class Float32(float):
    """A FLOAT column's value: a `float` that is published as a 32-bit float again."""

    __slots__ = ()


class Json:
    """A JSON document. `text` is the document as Sluice wrote it (compact); `value` is it
    parsed (a dict, list, str, number, bool or None), parsed on first use."""

    __slots__ = ("text", "_value", "_parsed")

    def __init__(self, text: str):
        self.text = text
        self._parsed = False
        self._value = None

    @classmethod
    def of(cls, value) -> "Json":
        """A document from a Python value (compact, non-ASCII kept as is)."""
        j = cls(_json.dumps(value, separators=(",", ":"), ensure_ascii=False))
        j._value, j._parsed = value, True
        return j

    @property
    def value(self):
        if not self._parsed:
            self._value = _json.loads(self.text)
            self._parsed = True
        return self._value

    def __eq__(self, other):
        if isinstance(other, Json):
            return self.text == other.text or self.value == other.value
        return NotImplemented

    def __hash__(self):
        return hash(self.text)

    def __repr__(self):
        return f"Json({self.text!r})"

    def __str__(self):
        return self.text


def _fraction(micros: int, fsp: int) -> str:
    if fsp <= 0:
        return ""
    return "." + f"{micros:06d}"[: min(fsp, 6)]


@dataclass(frozen=True)
class Date:
    """A DATE (`0000-00-00` included)."""

    year: int
    month: int
    day: int

    def __str__(self):
        return f"{self.year:04d}-{self.month:02d}-{self.day:02d}"

    def to_date(self) -> _dt.date:
        """As a `datetime.date` (a zero date raises `ValueError`)."""
        return _dt.date(self.year, self.month, self.day)


@dataclass(frozen=True)
class DateTime:
    """A DATETIME(fsp): `micros` is the fraction, of which `fsp` digits are published."""

    year: int
    month: int
    day: int
    hour: int = 0
    minute: int = 0
    second: int = 0
    micros: int = 0
    fsp: int = 0

    def __str__(self):
        return (
            f"{self.year:04d}-{self.month:02d}-{self.day:02d}T"
            f"{self.hour:02d}:{self.minute:02d}:{self.second:02d}{_fraction(self.micros, self.fsp)}"
        )

    def to_datetime(self) -> _dt.datetime:
        """As a naive `datetime.datetime` (a zero date raises `ValueError`)."""
        return _dt.datetime(
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.micros
        )

    @classmethod
    def from_datetime(cls, d: _dt.datetime, fsp: int = 6) -> "DateTime":
        return cls(d.year, d.month, d.day, d.hour, d.minute, d.second, d.microsecond, fsp)


def _civil_from_days(days: int):
    # Howard Hinnant's algorithm, as sluice-contract's `civil_from_days`.
    z = days + 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return (y + 1 if m <= 2 else y), m, d


@dataclass(frozen=True)
class Timestamp:
    """A TIMESTAMP(fsp), as seconds since the epoch (UTC)."""

    secs: int
    micros: int = 0
    fsp: int = 0

    def __str__(self):
        days, rem = divmod(self.secs, 86400)
        y, m, d = _civil_from_days(days)
        year = f"-{-y:03d}" if y < 0 else f"{y:04d}"
        return (
            f"{year}-{m:02d}-{d:02d}T{rem // 3600:02d}:{rem // 60 % 60:02d}:{rem % 60:02d}"
            f"{_fraction(self.micros, self.fsp)}Z"
        )

    def to_datetime(self) -> _dt.datetime:
        """As an aware `datetime.datetime` in UTC."""
        epoch = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
        return epoch + _dt.timedelta(seconds=self.secs, microseconds=self.micros)

    @classmethod
    def from_datetime(cls, d: _dt.datetime, fsp: int = 6) -> "Timestamp":
        """From an aware `datetime` (a naive one is taken as UTC)."""
        if d.tzinfo is None:
            d = d.replace(tzinfo=_dt.timezone.utc)
        delta = d - _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
        secs = delta.days * 86400 + delta.seconds
        return cls(secs, delta.microseconds, fsp)


@dataclass(frozen=True)
class Time:
    """A TIME(fsp): a signed duration, -838:59:59 … 838:59:59."""

    negative: bool
    hours: int
    minutes: int
    seconds: int
    micros: int = 0
    fsp: int = 0

    def __str__(self):
        sign = "-" if self.negative else ""
        return (
            f"{sign}{self.hours:02d}:{self.minutes:02d}:{self.seconds:02d}"
            f"{_fraction(self.micros, self.fsp)}"
        )

    def to_timedelta(self) -> _dt.timedelta:
        t = _dt.timedelta(
            hours=self.hours, minutes=self.minutes, seconds=self.seconds, microseconds=self.micros
        )
        return -t if self.negative else t


def contract_text(value) -> str:
    """The text a value is published as, for values JSON has no type for: dates and times
    (their contract text) and bytes (base64). Others: `str(value)`."""
    if isinstance(value, (bytes, bytearray)):
        import base64

        return base64.b64encode(bytes(value)).decode("ascii")
    return str(value)


_I64_MIN, _I64_MAX, _U64_MAX = -(1 << 63), (1 << 63) - 1, (1 << 64) - 1


def normalize(value):
    """The value as Sluice will publish it: Python's own types become the SDK's (a `datetime`
    a `DateTime`, or a `Timestamp` when it has a time zone; a `date` a `Date`; a `timedelta` a
    `Time`; a dict or list a `Json`; a bool 0 or 1). Raises `TypeError` or `ValueError` for a
    value no MySQL column type holds."""
    from decimal import Decimal

    if value is None or isinstance(value, (str, Float32, Json, Date, DateTime, Timestamp, Time)):
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        if not _I64_MIN <= value <= _U64_MAX:
            raise ValueError(f"{value} does not fit in 64 bits")
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"a DECIMAL cannot be {value}")
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, (dict, list, tuple)):
        return Json.of(value)
    if isinstance(value, _dt.datetime):
        if value.tzinfo is not None:
            return Timestamp.from_datetime(value)
        return DateTime.from_datetime(value, 6 if value.microsecond else 0)
    if isinstance(value, _dt.date):
        return Date(value.year, value.month, value.day)
    if isinstance(value, _dt.timedelta):
        micros = abs(value) // _dt.timedelta(microseconds=1)
        secs, micros = divmod(micros, 1_000_000)
        return Time(value < _dt.timedelta(0), secs // 3600, secs // 60 % 60, secs % 60, micros,
                    6 if micros else 0)
    raise TypeError(
        f"cannot publish a {type(value).__name__} value: use None, int, float, Decimal, str, "
        "bytes, a dict or list (JSON), or a date, time or datetime"
    )


def to_json(value):
    """The value in the contract's JSON form (a Python value `json.dumps` can write)."""
    from decimal import Decimal

    value = normalize(value)
    if value is None or isinstance(value, (int, float, str)):
        return value
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, Json):
        return value.value
    return contract_text(value)
