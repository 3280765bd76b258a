"""Column values that keep their MySQL type.

Design note: a value read from an event and set back must publish the same JSON, so the types
that Python's own would lose are kept: a FLOAT is a `Float32` (a `float` that remembers it is 32
bits wide), a DECIMAL a `decimal.Decimal` (its digits kept), a JSON document a `Json` (the text
Sluice sent, parsed on demand), and dates and times are the classes below, which hold MySQL's
whole range (zero dates, TIME up to 838 hours) and the column's fractional digits. Each converts
to the `datetime` type where that type can hold it; `str()` gives the contract's text.
"""

from __future__ import annotations

# Every module this one uses is imported here, at the top: componentize-py snapshots the
# interpreter after importing the transform, and a component cannot import anything later.
import base64 as _base64
import datetime as _dt
import json as _json
import math as _math
import struct as _struct
from dataclasses import dataclass
from decimal import Decimal as _Decimal
from fractions import Fraction as _Fraction

__all__ = ["Float32", "Json", "Date", "DateTime", "Timestamp", "Time", "contract_text",
           "normalize", "to_json", "float_text"]


class Float32(float):
    """A FLOAT column's value: a `float` rounded to 32 bits, published as a 32-bit float again
    (its shortest digits: `Float32(0.1)` publishes `0.1`). Arithmetic on it gives a plain
    `float`, which is published as a DOUBLE."""

    __slots__ = ()

    def __new__(cls, value=0.0):
        return super().__new__(cls, _struct.unpack("<f", _struct.pack("<f", float(value)))[0])


class Json:
    """A JSON document. `text` is the document as Sluice sent it (compact); `value` is it
    parsed (a dict, list, str, number, bool or None), parsed on first use. To change a
    document, change `value` (or set a new dict or list): once parsed, the document is
    published from `value`."""

    __slots__ = ("text", "_value", "_parsed")

    def __init__(self, text: str):
        self.text = text
        self._parsed = False
        self._value = None

    @classmethod
    def of(cls, value) -> "Json":
        """A document from a Python value (compact, non-ASCII kept as is)."""
        j = cls(_dumps(value))
        j._value, j._parsed = value, True
        return j

    def dumps(self) -> str:
        """The document to publish: `text`, or `value` serialised again once it was parsed
        (it may have been changed). NaN and infinities are refused: JSON has none."""
        return _dumps(self._value) if self._parsed else self.text

    @property
    def value(self):
        if not self._parsed:
            self._value = _json.loads(self.text)
            self._parsed = True
        return self._value

    def __eq__(self, other):
        if isinstance(other, Json):
            return self.value == other.value
        return NotImplemented

    # Mutable, like the dict or list it holds.
    __hash__ = None

    def __repr__(self):
        return f"Json({self.text!r})"

    def __str__(self):
        return self.text


def _dumps(value) -> str:
    return _json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


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
    era = z // 146097  # Python's floor division already rounds toward -infinity
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
        return _base64.b64encode(bytes(value)).decode("ascii")
    return str(value)


_I64_MIN, _I64_MAX, _U64_MAX = -(1 << 63), (1 << 63) - 1, (1 << 64) - 1

#: The widths of the WIT's date and time fields (their `cell` records): name → (min, max).
_U8, _U16, _U32 = (0, 255), (0, 65535), (0, (1 << 32) - 1)
_FIELDS = {
    Date: {"year": _U16, "month": _U8, "day": _U8},
    DateTime: {"year": _U16, "month": _U8, "day": _U8, "hour": _U8, "minute": _U8,
               "second": _U8, "micros": _U32, "fsp": _U8},
    Timestamp: {"secs": (_I64_MIN, _I64_MAX), "micros": _U32, "fsp": _U8},
    Time: {"hours": _U32, "minutes": _U8, "seconds": _U8, "micros": _U32, "fsp": _U8},
}


def _check_fields(value):
    for name, (lo, hi) in _FIELDS[type(value)].items():
        x = getattr(value, name)
        if isinstance(x, bool) or not isinstance(x, int) or not lo <= x <= hi:
            raise ValueError(f"{type(value).__name__}.{name} must be an integer in {lo}..={hi}, "
                             f"not {x!r}")
    return value


def normalize(value):
    """The value as Sluice will publish it: Python's own types become the SDK's (a `datetime`
    a `DateTime`, or a `Timestamp` when it has a time zone; a `date` a `Date`; a `timedelta` a
    `Time`; a dict or list a `Json`; a bool 0 or 1). Raises `TypeError` or `ValueError` for a
    value no MySQL column type holds, or that does not fit the WIT's fields."""
    if value is None or isinstance(value, (str, Float32, Json)):
        return value
    if isinstance(value, (Date, DateTime, Timestamp, Time)):
        return _check_fields(value)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        if not _I64_MIN <= value <= _U64_MAX:
            raise ValueError(f"{value} does not fit in 64 bits")
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, _Decimal):
        if not value.is_finite():
            raise ValueError(f"a DECIMAL cannot be {value}")
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, (dict, list, tuple)):
        return Json.of(value)
    if isinstance(value, _dt.datetime):
        if value.tzinfo is not None:
            return _check_fields(Timestamp.from_datetime(value, 6 if value.microsecond else 0))
        return _check_fields(DateTime.from_datetime(value, 6 if value.microsecond else 0))
    if isinstance(value, _dt.date):
        return Date(value.year, value.month, value.day)
    if isinstance(value, _dt.timedelta):
        micros = abs(value) // _dt.timedelta(microseconds=1)
        secs, micros = divmod(micros, 1_000_000)
        return _check_fields(Time(value < _dt.timedelta(0), secs // 3600, secs // 60 % 60,
                                  secs % 60, micros, 6 if micros else 0))
    raise TypeError(
        f"cannot publish a {type(value).__name__} value: use None, int, float, Decimal, str, "
        "bytes, a dict or list (JSON), or a date, time or datetime"
    )


def _shortest(x: float, bits: int):
    """The shortest decimal digits that read back as `x` (a double, or a float when `bits` is
    32), as Rust prints them: (digits without a dot, decimal exponent of the first digit)."""
    if bits == 64:
        # repr is the shortest round trip, correctly rounded, as Rust's.
        t = _Decimal(repr(abs(x))).as_tuple()
        digits = "".join(map(str, t.digits))
        return digits.rstrip("0") or "0", t.exponent + len(digits) - 1
    exact = abs(_Fraction(x))

    def back(text):
        try:
            return _struct.unpack("<f", _struct.pack("<f", float(text)))[0] == abs(x)
        except OverflowError:  # past the largest float
            return False

    for p in range(1, 10):
        rounded = f"{abs(x):.{p - 1}e}"
        m, _, e = rounded.partition("e")
        base = int(m.replace(".", ""))
        exp = int(e)
        # The correctly rounded digits, and their neighbours (a power of two has an uneven
        # gap below it): the closest that reads back wins, ties away from zero.
        best = None
        for cand in (base - 1, base, base + 1):
            if cand <= 0:
                continue
            ce = exp
            text = str(cand)
            if len(text) < p:  # 1.00 - 1: a shorter form, tried with a smaller p already
                continue
            if len(text) > p:  # 9.99 + 1 → 10.0
                ce += 1
                text = text[:p]
                cand = int(text)
            value = _Fraction(cand) * _Fraction(10) ** (ce - p + 1)
            if not back(f"{text[0]}.{text[1:] or '0'}e{ce}"):
                continue
            key = (abs(value - exact), -value)
            if best is None or key < best[0]:
                best = (key, text, ce)
        if best is not None:
            return best[1].rstrip("0") or "0", best[2]
    raise ValueError(f"no shortest form for {x}")


def float_text(x: float, bits: int = 64) -> str:
    """A float as Sluice's JSON writes it (serde_json): the shortest digits that read back,
    `1.0` for whole numbers, an exponent outside 1e-5 … 1e16 (`1e+20`, `1.5e-7`), `null` when
    not finite. `bits=32` for a FLOAT column."""
    if not _math.isfinite(x):
        return "null"
    if x == 0:
        return "-0.0" if _math.copysign(1, x) < 0 else "0.0"
    digits, exp = _shortest(x, bits)
    sign = "-" if x < 0 else ""
    if -5 <= exp < 16:
        if exp >= 0:
            whole = (digits + "0" * (exp + 1))[: exp + 1]
            return f"{sign}{whole}.{digits[exp + 1:] or '0'}"
        return f"{sign}0.{'0' * (-exp - 1)}{digits}"
    frac = f".{digits[1:]}" if len(digits) > 1 else ""
    return f"{sign}{digits[0]}{frac}e{'+' if exp > 0 else ''}{exp}"


def to_json(value):
    """The value in the contract's JSON form (a Python value `json.dumps` can write), as Sluice
    publishes it: a FLOAT by its shortest 32-bit digits, NaN and infinities as null."""
    value = normalize(value)
    if isinstance(value, float):
        if not _math.isfinite(value):
            return None
        return float(float_text(value, 32)) if isinstance(value, Float32) else value
    if value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, _Decimal):
        return format(value, "f")
    if isinstance(value, Json):
        return _json.loads(value.dumps())
    return contract_text(value)
