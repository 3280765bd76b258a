// Column values: the classes an author sees, their mapping to the WIT `cell`, and the
// contract's text forms (contract/src/{value,format,json}.rs), written to give byte for byte
// what the Rust side gives.
//
// Design note: a value crosses the SDK in two shapes. Authors see plain JavaScript values and
// the classes below; the answer to the host carries *cells*, `{tag, val}` objects shaped like
// the WIT `cell` variant except that text, decimals, bytes and JSON hold their string or bytes
// (the encoder turns those into spans of the answer's `data`). `toCell` is the one place that
// decides which cell a JavaScript value becomes, so the component and the native harness agree.

/** Thrown to fail a batch with exactly this text (like `Err(text)` in Rust). */
export class SluiceError extends Error {
  constructor(message) {
    super(message);
    this.name = 'SluiceError';
  }
}

function checkInt(what, v, max) {
  if (!Number.isInteger(v) || v < 0 || v > max) {
    throw new RangeError(`${what} must be an integer in 0..=${max}, not ${String(v)}`);
  }
  return v;
}

/** A MySQL FLOAT (32 bits). `.value` is the number, rounded to 32 bits. */
export class Float32 {
  constructor(value) {
    if (typeof value !== 'number') throw new TypeError('Float32 takes a number');
    this.value = Math.fround(value);
  }
  valueOf() {
    return this.value;
  }
  toString() {
    return Number.isFinite(this.value) ? String(Number(f32Digits(this.value))) : String(this.value);
  }
}

/** A number to publish as a DOUBLE even when it is an integer (`new Double(3)`). */
export class Double {
  constructor(value) {
    if (typeof value !== 'number') throw new TypeError('Double takes a number');
    this.value = value;
  }
  valueOf() {
    return this.value;
  }
  toString() {
    return String(this.value);
  }
}

/** A MySQL DECIMAL, exact: `.text` is its digits as MySQL formats them ("19.990"). */
export class Decimal {
  constructor(text) {
    if (typeof text === 'bigint') text = String(text);
    if (typeof text !== 'string') {
      throw new TypeError('Decimal takes its text ("19.990"), so that no digit is lost to a number');
    }
    this.text = text;
  }
  [Symbol.toPrimitive](hint) {
    return hint === 'number' ? Number(this.text) : this.text;
  }
  toString() {
    return this.text;
  }
  toJSON() {
    return this.text;
  }
}

/**
 * A JSON document. `.text` is the document as Sluice wrote it (compact, its numbers' digits
 * kept); `.value` is it parsed (numbers past 2^53 lose digits there, not in `.text`).
 * `new Json(value)` serializes a JavaScript value; `Json.fromText(text)` keeps a text.
 */
export class Json {
  constructor(value) {
    const text = JSON.stringify(value);
    if (text === undefined) throw new TypeError(`${String(value)} is not a JSON value`);
    this.text = text;
    this._value = value;
    this._parsed = true;
  }
  static fromText(text) {
    if (typeof text !== 'string') throw new TypeError('Json.fromText takes a string');
    const j = jsonFromText(text);
    j._value = JSON.parse(text);
    j._parsed = true;
    return j;
  }
  get value() {
    if (!this._parsed) {
      this._value = JSON.parse(this.text);
      this._parsed = true;
    }
    return this._value;
  }
  toString() {
    return this.text;
  }
  toJSON() {
    return this.value;
  }
}

/** A Json of host-written text, parsed only when `.value` is read. */
export function jsonFromText(text) {
  const j = Object.create(Json.prototype);
  j.text = text;
  j._value = undefined;
  j._parsed = false;
  return j;
}

function utcDate(year, month, day, h, mi, s, ms) {
  if (month < 1 || month > 12 || day < 1 || day > 31) return null;
  const d = new Date(0);
  d.setUTCFullYear(year, month - 1, day);
  d.setUTCHours(h, mi, s, ms);
  if (d.getUTCDate() !== day) return null; // 2023-02-30
  return d;
}

/**
 * A MySQL DATE, with its full range (zero dates such as 0000-00-00 included). Named `Date_`
 * so that it does not hide JavaScript's `Date` (import it `as` another name if you like).
 */
export class Date_ {
  constructor(year, month, day) {
    this.year = checkInt('year', year, 0xffff);
    this.month = checkInt('month', month, 0xff);
    this.day = checkInt('day', day, 0xff);
  }
  /** The UTC midnight of this date, or null for a zero or invalid date. */
  toDate() {
    return utcDate(this.year, this.month, this.day, 0, 0, 0, 0);
  }
  /** The UTC date of a JavaScript Date. */
  static fromDate(d) {
    return new Date_(d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate());
  }
  toString() {
    return temporalText('date', this);
  }
  toJSON() {
    return this.toString();
  }
}

/** A MySQL DATETIME(fsp): no time zone; `micros` is the fraction, `fsp` digits of it print. */
export class DateTime {
  constructor(year, month, day, hour = 0, minute = 0, second = 0, micros = 0, fsp = 0) {
    this.year = checkInt('year', year, 0xffff);
    this.month = checkInt('month', month, 0xff);
    this.day = checkInt('day', day, 0xff);
    this.hour = checkInt('hour', hour, 0xff);
    this.minute = checkInt('minute', minute, 0xff);
    this.second = checkInt('second', second, 0xff);
    this.micros = checkInt('micros', micros, 0xffffffff);
    this.fsp = checkInt('fsp', fsp, 0xff);
  }
  /** This date and time read as UTC (milliseconds kept), or null for a zero or invalid date. */
  toDate() {
    return utcDate(this.year, this.month, this.day, this.hour, this.minute, this.second,
      Math.floor(this.micros / 1000));
  }
  /** The UTC date and time of a JavaScript Date, with `fsp` fractional digits (default 3). */
  static fromDate(d, fsp = 3) {
    return new DateTime(d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate(), d.getUTCHours(),
      d.getUTCMinutes(), d.getUTCSeconds(), d.getUTCMilliseconds() * 1000, fsp);
  }
  toString() {
    return temporalText('datetime', this);
  }
  toJSON() {
    return this.toString();
  }
}

const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;
const U64_MAX = 2n ** 64n - 1n;

/** A MySQL TIMESTAMP(fsp): `secs` since the epoch, UTC (a number, or a bigint past 2^53). */
export class Timestamp {
  constructor(secs, micros = 0, fsp = 0) {
    if (typeof secs === 'bigint') {
      if (secs < I64_MIN || secs > I64_MAX) throw new RangeError('secs must fit 64 signed bits');
      if (secs >= -(2n ** 53n) + 1n && secs <= 2n ** 53n - 1n) secs = Number(secs);
    } else if (!Number.isSafeInteger(secs)) {
      throw new RangeError(`secs must be an integer, not ${String(secs)}`);
    }
    this.secs = secs;
    this.micros = checkInt('micros', micros, 0xffffffff);
    this.fsp = checkInt('fsp', fsp, 0xff);
  }
  /** The instant as a JavaScript Date (milliseconds kept), or null beyond its range. */
  toDate() {
    const ms = Number(this.secs) * 1000 + Math.floor(this.micros / 1000);
    return Math.abs(ms) <= 8.64e15 ? new Date(ms) : null;
  }
  /** A JavaScript Date's instant, with `fsp` fractional digits (default 3). */
  static fromDate(d, fsp = 3) {
    const ms = d.getTime();
    const secs = Math.floor(ms / 1000);
    return new Timestamp(secs, (ms - secs * 1000) * 1000, fsp);
  }
  toString() {
    return temporalText('timestamp', this);
  }
  toJSON() {
    return this.toString();
  }
}

/** A MySQL TIME(fsp): a signed duration, -838:59:59 … 838:59:59. */
export class Time {
  constructor(negative, hours, minutes = 0, seconds = 0, micros = 0, fsp = 0) {
    if (typeof negative !== 'boolean') throw new TypeError('Time(negative, hours, …): negative is a boolean');
    this.negative = negative;
    this.hours = checkInt('hours', hours, 0xffffffff);
    this.minutes = checkInt('minutes', minutes, 0xff);
    this.seconds = checkInt('seconds', seconds, 0xff);
    this.micros = checkInt('micros', micros, 0xffffffff);
    this.fsp = checkInt('fsp', fsp, 0xff);
  }
  /** The signed duration in microseconds. */
  toMicros() {
    const m = ((this.hours * 60 + this.minutes) * 60 + this.seconds) * 1e6 + this.micros;
    return this.negative ? -m : m;
  }
  toString() {
    return temporalText('time', this);
  }
  toJSON() {
    return this.toString();
  }
}

// ---------------------------------------------------------------------------------------------
// Cells.

export const TAGS = ['null', 'int', 'uint', 'float', 'double', 'decimal', 'text', 'bytes', 'date',
  'datetime', 'timestamp', 'time', 'json'];

export const NULL_CELL = Object.freeze({ tag: 'null' });

const TWO63 = 2 ** 63;
const TWO64 = 2 ** 64;

function isPlain(v) {
  if (Array.isArray(v)) return true;
  const p = Object.getPrototypeOf(v);
  return p === Object.prototype || p === null;
}

/**
 * The cell a JavaScript value publishes as. Throws a TypeError (or RangeError) for a value
 * that has no column form, at the author's call.
 */
export function toCell(v) {
  switch (typeof v) {
    case 'string':
      return { tag: 'text', val: v };
    case 'number':
      if (Number.isInteger(v) && !Object.is(v, -0)) {
        if (v >= -TWO63 && v < TWO63) return { tag: 'int', val: v };
        if (v > 0 && v < TWO64) return { tag: 'uint', val: v };
      }
      return { tag: 'double', val: v };
    case 'bigint':
      if (v >= I64_MIN && v <= I64_MAX) return { tag: 'int', val: v };
      if (v > 0n && v <= U64_MAX) return { tag: 'uint', val: v };
      throw new RangeError(`${v} fits neither 64 signed nor 64 unsigned bits`);
    case 'boolean':
      return { tag: 'int', val: v ? 1 : 0 };
    case 'undefined':
      throw new TypeError('undefined is not a column value (use null for NULL)');
    case 'object': {
      if (v === null) return NULL_CELL;
      if (v instanceof Uint8Array) return { tag: 'bytes', val: v.slice() };
      if (v instanceof ArrayBuffer) return { tag: 'bytes', val: new Uint8Array(v.slice(0)) };
      if (v instanceof Float32) return { tag: 'float', val: v.value };
      if (v instanceof Double) return { tag: 'double', val: v.value };
      if (v instanceof Decimal) return { tag: 'decimal', val: v.text };
      if (v instanceof Json) return { tag: 'json', val: v.text };
      if (v instanceof Date_) return { tag: 'date', val: { year: v.year, month: v.month, day: v.day } };
      if (v instanceof DateTime) {
        return {
          tag: 'datetime',
          val: {
            year: v.year, month: v.month, day: v.day, hour: v.hour, minute: v.minute,
            second: v.second, micros: v.micros, fsp: v.fsp,
          },
        };
      }
      if (v instanceof Timestamp) return { tag: 'timestamp', val: { secs: v.secs, micros: v.micros, fsp: v.fsp } };
      if (v instanceof Time) {
        return {
          tag: 'time',
          val: {
            negative: v.negative, hours: v.hours, minutes: v.minutes, seconds: v.seconds,
            micros: v.micros, fsp: v.fsp,
          },
        };
      }
      if (v instanceof Date) {
        throw new TypeError('a JavaScript Date is not a column value: use Timestamp.fromDate(d) or DateTime.fromDate(d)');
      }
      if (isPlain(v)) return { tag: 'json', val: JSON.stringify(v) };
      throw new TypeError(`a ${v.constructor?.name ?? 'object'} is not a column value`);
    }
    default:
      throw new TypeError(`a ${typeof v} is not a column value`);
  }
}

/** An integer as `get` returns it: a number when exact (|v| < 2^53), else a bigint. */
function intValue(v) {
  if (typeof v === 'number') return Number.isSafeInteger(v) ? v : BigInt(v);
  return v >= -(2n ** 53n) + 1n && v <= 2n ** 53n - 1n ? Number(v) : v;
}

/** The JavaScript value of a cell (what `Event.get` returns for it). */
export function cellToJs(c) {
  const v = c.val;
  switch (c.tag) {
    case 'null':
      return null;
    case 'int':
    case 'uint':
      return intValue(v);
    case 'float': {
      const f = Object.create(Float32.prototype);
      f.value = Math.fround(v);
      return f;
    }
    case 'double':
      return v;
    case 'decimal':
      return new Decimal(v);
    case 'text':
      return v;
    case 'bytes':
      return v.slice();
    case 'date':
      return mk(Date_.prototype, v);
    case 'datetime':
      return mk(DateTime.prototype, v);
    case 'timestamp':
      return mk(Timestamp.prototype, { secs: intValue(v.secs), micros: v.micros, fsp: v.fsp });
    case 'time':
      return mk(Time.prototype, v);
    case 'json':
      return jsonFromText(v);
    default:
      throw new TypeError(`unknown cell tag ${c.tag}`);
  }
}

function mk(proto, fields) {
  return Object.assign(Object.create(proto), fields);
}

// ---------------------------------------------------------------------------------------------
// The packed request (contract/src/packed.rs): 36-byte event views and 16-byte cells, over
// the batch's `data`.
//
// Design note: in the component, JavaScript runs in SpiderMonkey's interpreter, where a native
// call or an allocation costs hundreds of nanoseconds. So the batch is read through typed-array
// views (one element read per field, no DataView call), and values are decoded only when the
// transform asks for them.

export const CELL_BYTES = 16;
export const VIEW_BYTES = 36;

const UTF8 = new TextDecoder('utf-8', { fatal: true });

function aligned(bytes) {
  return bytes.byteOffset % 8 === 0 ? bytes : bytes.slice();
}

/** A batch: its views and cells as 32-bit words, and the `data` their spans point at. */
export class Batch {
  constructor(views, cells, data) {
    views = aligned(views);
    cells = aligned(cells);
    /** The views, 9 words each. */
    this.views = new Uint32Array(views.buffer, views.byteOffset, views.length >> 2);
    this.u8 = cells;
    this.u32 = new Uint32Array(cells.buffer, cells.byteOffset, cells.length >> 2);
    this.dv = null;
    /** Cells in the batch. */
    this.n = cells.length >> 4;
    this.data = data;
    this.ascii = undefined; // the whole data as a string when it is all ASCII, else null
  }

  _dv() {
    if (this.dv === null) this.dv = new DataView(this.u8.buffer, this.u8.byteOffset, this.u8.byteLength);
    return this.dv;
  }

  _span(c) {
    const start = this.u32[(c << 2) + 2];
    const len = this.u32[(c << 2) + 3];
    if (start + len > this.data.length) {
      throw new SluiceError(`a span ${start}+${len} beyond its ${this.data.length} bytes`);
    }
    return start;
  }

  /** The text of cell `c`'s span. */
  text(c) {
    const start = this._span(c);
    const end = start + this.u32[(c << 2) + 3];
    let a = this.ascii;
    if (a === undefined) {
      a = null;
      try {
        const s = UTF8.decode(this.data);
        if (s.length === this.data.length) a = s;
      } catch {
        // Some span is binary: decode spans one by one.
      }
      this.ascii = a;
    }
    if (a !== null) return a.substring(start, end);
    try {
      return UTF8.decode(this.data.subarray(start, end));
    } catch {
      throw new SluiceError('text that is not UTF-8');
    }
  }

  /** The type name of cell `c`. */
  tag(c) {
    if (c >= this.n) throw new SluiceError('cell range out of bounds');
    const t = TAGS[this.u8[c << 4]];
    if (t === undefined) throw new SluiceError(`unknown cell tag ${this.u8[c << 4]}`);
    return t;
  }

  /** The JavaScript value of cell `c`. */
  read(c) {
    if (c >= this.n) throw new SluiceError('cell range out of bounds');
    const u8 = this.u8;
    const b = c << 4;
    const w = c << 2;
    switch (u8[b]) {
      case 0:
        return null;
      case 1: {
        const hi = this.u32[w + 3] | 0;
        if (hi >= -0x200000 && hi < 0x200000 && !(hi === -0x200000 && this.u32[w + 2] === 0)) {
          return hi * 4294967296 + this.u32[w + 2];
        }
        return this._dv().getBigInt64(b + 8, true);
      }
      case 2: {
        const hi = this.u32[w + 3];
        if (hi < 0x200000) return hi * 4294967296 + this.u32[w + 2];
        return this._dv().getBigUint64(b + 8, true);
      }
      case 3: {
        const f = Object.create(Float32.prototype);
        f.value = this._dv().getFloat32(b + 8, true);
        return f;
      }
      case 4:
        return this._dv().getFloat64(b + 8, true);
      case 5: {
        const d = Object.create(Decimal.prototype);
        d.text = this.text(c);
        return d;
      }
      case 6: {
        // The common case inline: text of an all-ASCII batch (calls cost in the interpreter).
        const a = this.ascii;
        if (a !== undefined && a !== null) {
          const start = this.u32[w + 2];
          const end = start + this.u32[w + 3];
          if (end <= a.length) return a.substring(start, end);
        }
        return this.text(c);
      }
      case 7: {
        const start = this._span(c);
        return this.data.slice(start, start + this.u32[w + 3]);
      }
      case 8: {
        const d = Object.create(Date_.prototype);
        d.year = u8[b + 2] | (u8[b + 3] << 8);
        d.month = u8[b + 4];
        d.day = u8[b + 5];
        return d;
      }
      case 9: {
        const d = Object.create(DateTime.prototype);
        d.year = u8[b + 2] | (u8[b + 3] << 8);
        d.month = u8[b + 4];
        d.day = u8[b + 5];
        d.hour = u8[b + 6];
        d.minute = u8[b + 7];
        d.second = u8[b + 12];
        d.micros = this.u32[w + 2];
        d.fsp = u8[b + 13];
        return d;
      }
      case 10: {
        const t = Object.create(Timestamp.prototype);
        const hi = this.u32[w + 3] | 0;
        t.secs = hi >= -0x200000 && hi < 0x200000 && !(hi === -0x200000 && this.u32[w + 2] === 0)
          ? hi * 4294967296 + this.u32[w + 2]
          : this._dv().getBigInt64(b + 8, true);
        t.micros = this.u32[w + 1];
        t.fsp = u8[b + 1];
        return t;
      }
      case 11: {
        const t = Object.create(Time.prototype);
        t.negative = u8[b + 1] !== 0;
        t.hours = this.u32[w + 1];
        t.minutes = u8[b + 3];
        t.seconds = u8[b + 12];
        t.micros = this.u32[w + 2];
        t.fsp = u8[b + 2];
        return t;
      }
      case 12:
        return jsonFromText(this.text(c));
      default:
        throw new SluiceError(`unknown cell tag ${u8[b]}`);
    }
  }
}

const TEXT = new TextEncoder();

/**
 * Packs cells as the host does (packed.rs `write_cell`): {cells, data}. The native harness
 * sends its test events through the same reader as the component.
 */
export function packCells(list) {
  const cells = new Uint8Array(list.length * CELL_BYTES);
  const dv = new DataView(cells.buffer);
  const chunks = [];
  let size = 0;
  list.forEach((c, i) => {
    const b = i * CELL_BYTES;
    const v = c.val;
    cells[b] = TAGS.indexOf(c.tag);
    const span = (bytes) => {
      dv.setUint32(b + 8, size, true);
      dv.setUint32(b + 12, bytes.length, true);
      chunks.push(bytes);
      size += bytes.length;
    };
    switch (c.tag) {
      case 'int':
        dv.setBigInt64(b + 8, BigInt(v), true);
        break;
      case 'uint':
        dv.setBigUint64(b + 8, BigInt(v), true);
        break;
      case 'float':
        dv.setFloat32(b + 8, v, true);
        break;
      case 'double':
        dv.setFloat64(b + 8, v, true);
        break;
      case 'decimal':
      case 'text':
      case 'json':
        span(TEXT.encode(v));
        break;
      case 'bytes':
        span(v);
        break;
      case 'date':
      case 'datetime':
        dv.setUint16(b + 2, v.year, true);
        cells[b + 4] = v.month;
        cells[b + 5] = v.day;
        if (c.tag === 'datetime') {
          cells[b + 6] = v.hour;
          cells[b + 7] = v.minute;
          dv.setUint32(b + 8, v.micros, true);
          cells[b + 12] = v.second;
          cells[b + 13] = v.fsp;
        }
        break;
      case 'timestamp':
        cells[b + 1] = v.fsp;
        dv.setUint32(b + 4, v.micros, true);
        dv.setBigInt64(b + 8, BigInt(v.secs), true);
        break;
      case 'time':
        cells[b + 1] = v.negative ? 1 : 0;
        cells[b + 2] = v.fsp;
        cells[b + 3] = v.minutes;
        dv.setUint32(b + 4, v.hours, true);
        dv.setUint32(b + 8, v.micros, true);
        cells[b + 12] = v.seconds;
        break;
      default:
    }
  });
  const data = new Uint8Array(size);
  let at = 0;
  for (const ch of chunks) {
    data.set(ch, at);
    at += ch.length;
  }
  return { cells, data };
}

// ---------------------------------------------------------------------------------------------
// Text forms.

function pad(v, width) {
  const s = String(v);
  return s.length >= width ? s : '0'.repeat(width - s.length) + s;
}

function dateText(year, month, day) {
  const y = year < 0 ? '-' + pad(-year, 3) : pad(year, 4);
  return `${y}-${pad(month, 2)}-${pad(day, 2)}`;
}

function clockText(h, m, s) {
  return `${pad(h, 2)}:${pad(m, 2)}:${pad(s, 2)}`;
}

function fractionText(micros, fsp) {
  return fsp > 0 ? '.' + pad(micros, 6).slice(0, Math.min(fsp, 6)) : '';
}

/** Days since 1970-01-01 to a proleptic Gregorian [year, month, day] (format.rs). */
export function civilFromDays(days) {
  const z = days + 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
  const y = yoe + era * 400;
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp < 10 ? mp + 3 : mp - 9;
  return [m <= 2 ? y + 1 : y, m, d];
}

/** The contract's text of a date or time value (`type` is its cell tag). */
export function temporalText(type, v) {
  switch (type) {
    case 'date':
      return dateText(v.year, v.month, v.day);
    case 'datetime':
      return `${dateText(v.year, v.month, v.day)}T${clockText(v.hour, v.minute, v.second)}${fractionText(v.micros, v.fsp)}`;
    case 'timestamp': {
      let days;
      let rem;
      if (typeof v.secs === 'bigint') {
        let d = v.secs / 86400n;
        let r = v.secs % 86400n;
        if (r < 0n) {
          r += 86400n;
          d -= 1n;
        }
        days = Number(d);
        rem = Number(r);
      } else {
        days = Math.floor(v.secs / 86400);
        rem = v.secs - days * 86400;
      }
      const [y, m, d] = civilFromDays(days);
      const clock = clockText(Math.floor(rem / 3600), Math.floor(rem / 60) % 60, rem % 60);
      return `${dateText(y, m, d)}T${clock}${fractionText(v.micros, v.fsp)}Z`;
    }
    case 'time':
      return `${v.negative ? '-' : ''}${clockText(v.hours, v.minutes, v.seconds)}${fractionText(v.micros, v.fsp)}`;
    default:
      return '';
  }
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** Standard base64 with padding, as the contract publishes binary columns. */
export function base64(bytes) {
  let out = '';
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out += B64[n >> 18] + B64[(n >> 12) & 63] + B64[(n >> 6) & 63] + B64[n & 63];
  }
  if (i < bytes.length) {
    const n = (bytes[i] << 16) | ((i + 1 < bytes.length ? bytes[i + 1] : 0) << 8);
    out += B64[n >> 18] + B64[(n >> 12) & 63];
    out += i + 1 < bytes.length ? B64[(n >> 6) & 63] + '=' : '==';
  }
  return out;
}

/** The shortest decimal digits and exponent of a finite, non-zero number: [digits, exp10]. */
function shortest(x) {
  const s = Math.abs(x).toExponential(); // "d.ddde+N": the shortest digits that round-trip
  const e = s.indexOf('e');
  const digits = s.slice(0, e).replace('.', '');
  return [digits, Number(s.slice(e + 1))];
}

/**
 * A finite f64 as serde_json writes it (zmij: the shortest round-trip digits, fixed notation
 * for decimal exponents -5..=15 with at least one fractional digit, else `1.5e+20`/`1e-7`).
 */
export function f64Text(x) {
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const sign = x < 0 ? '-' : '';
  const [digits, e] = shortest(x);
  const n = digits.length;
  if (e >= -5 && e <= 15) {
    if (n - 1 <= e) return sign + digits + '0'.repeat(e - n + 1) + '.0';
    if (e >= 0) return sign + digits.slice(0, e + 1) + '.' + digits.slice(e + 1);
    return sign + '0.' + '0'.repeat(-e - 1) + digits;
  }
  const mant = n > 1 ? digits[0] + '.' + digits.slice(1) : digits;
  return `${sign}${mant}e${e < 0 ? '-' : '+'}${Math.abs(e)}`;
}

/**
 * The shortest decimal text that reads back as this f32 (as Rust's `f32` Display finds its
 * digits), in exponent form: "1.5e+0".
 */
export function f32Digits(x) {
  if (x === 0) return Object.is(x, -0) ? '-0' : '0';
  for (let p = 1; p <= 9; p++) {
    const s = x.toPrecision(p);
    if (Math.fround(Number(s)) === x) return Number(s).toExponential();
    // The nearest p-digit decimal missed; at a power of two the rounding interval is lopsided
    // and the p-digit neighbour on the other side may still read back.
    const [m, e] = Number(s).toExponential(p - 1).split('e');
    const unit = BigInt(m.replace('.', '').replace('-', ''));
    const neg = x < 0;
    const other = Number(s) < x !== neg ? unit + 1n : unit - 1n;
    const t = `${neg ? '-' : ''}${other}e${Number(e) - (p - 1)}`;
    if (Math.fround(Number(t)) === x) return Number(t).toExponential();
  }
  return x.toExponential();
}

/** The contract's JSON text of a number that is not an integer cell (a double). */
function doubleJson(x) {
  return Number.isFinite(x) ? f64Text(x) : 'null';
}

/**
 * The contract's JSON text of a value: what Rust's `sluice_guest::json::value(v).to_string()`
 * gives (a FLOAT through its shortest text, read as a double). A JavaScript number publishes
 * as an integer when it is one: wrap a DOUBLE that holds an integer in `Double` to get `5.0`.
 */
export function contractJson(v) {
  return cellJson(toCell(v));
}

/** The contract's JSON text of a cell (the tree form, as `contractJson`). */
export function cellJson(c) {
  const v = c.val;
  switch (c.tag) {
    case 'null':
      return 'null';
    case 'int':
    case 'uint':
      return String(v);
    case 'float':
      return Number.isFinite(v) ? f64Text(Number(f32Digits(v))) : 'null';
    case 'double':
      return doubleJson(v);
    case 'decimal':
    case 'text':
      return JSON.stringify(v);
    case 'bytes':
      return JSON.stringify(base64(v));
    case 'json':
      return canonicalJson(v);
    default:
      return JSON.stringify(temporalText(c.tag, v));
  }
}

/** The contract's JSON value of a cell, as a JavaScript value (for `valueJson`). */
export function cellJsonValue(c) {
  const v = c.val;
  switch (c.tag) {
    case 'null':
      return null;
    case 'int':
    case 'uint':
      return intValue(v);
    case 'float':
      return Number.isFinite(v) ? Number(f32Digits(v)) : null;
    case 'double':
      return Number.isFinite(v) ? v : null;
    case 'decimal':
    case 'text':
      return v;
    case 'bytes':
      return base64(v);
    case 'json':
      return JSON.parse(v);
    default:
      return temporalText(c.tag, v);
  }
}

// ---------------------------------------------------------------------------------------------
// Rust's number and text rules.

const RUST_F64 = /^[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)$/i;

/** `text.parse::<f64>()` in Rust: the number, or null when Rust refuses the text. */
export function parseRustF64(text) {
  if (!RUST_F64.test(text)) return null;
  const body = text.replace(/^[+-]/, '').toLowerCase();
  const neg = text[0] === '-';
  if (body === 'nan') return NaN;
  if (body === 'inf' || body === 'infinity') return neg ? -Infinity : Infinity;
  return Number(text);
}

const HIGH = /[\uD800-\uFFFF]/;

/** Compares strings by Unicode code point (UTF-8 byte order, Rust's `str` order): -1, 0, 1. */
export function compareText(a, b) {
  if (a === b) return 0;
  if (!HIGH.test(a) || !HIGH.test(b)) return a < b ? -1 : 1;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x !== y) {
      // UTF-16 puts U+E000..U+FFFF after the surrogates that encode U+10000 and above.
      if (x >= 0xd800) x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
      if (y >= 0xd800) y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
      return x < y ? -1 : 1;
    }
  }
  return a.length < b.length ? -1 : 1;
}

const RUST_WS = /^[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+|[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/g;

/** `str::trim` in Rust (Unicode White_Space, which differs from JavaScript's `trim`). */
export function rustTrim(s) {
  return s.replace(RUST_WS, '');
}

/** A string as Rust's `{:?}` prints it. */
export function rustDebug(s) {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0);
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c === 0) out += '\\0';
    else if (c < 0x20 || (c >= 0x7f && c < 0xa0)) out += `\\u{${c.toString(16)}}`;
    else out += ch;
  }
  return out + '"';
}

// ---------------------------------------------------------------------------------------------
// JSON documents as serde_json (preserve_order, float_roundtrip) reads and writes them.

/**
 * A JSON text as Sluice re-writes it: parsed as serde_json parses it and written compact
 * (object keys in first-seen order, a repeated key's last value; integers kept exactly; other
 * numbers as doubles, `1.0`). Throws a SyntaxError where serde_json would refuse the text.
 */
export function canonicalJson(text) {
  const p = { s: text, i: 0 };
  const v = parseValue(p, 0);
  ws(p);
  if (p.i !== text.length) throw new SyntaxError(`trailing characters in JSON at ${p.i}`);
  return v;
}

function ws(p) {
  const s = p.s;
  while (p.i < s.length) {
    const c = s.charCodeAt(p.i);
    if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) p.i++;
    else break;
  }
}

const NUMBER = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;

function parseValue(p, depth) {
  if (depth > 128) throw new SyntaxError('JSON nested too deeply');
  ws(p);
  const s = p.s;
  const c = s[p.i];
  if (c === '{') {
    p.i++;
    const keys = [];
    const values = new Map();
    ws(p);
    if (s[p.i] === '}') {
      p.i++;
      return '{}';
    }
    for (;;) {
      ws(p);
      if (s[p.i] !== '"') throw new SyntaxError(`expected a key in JSON at ${p.i}`);
      const k = parseString(p);
      ws(p);
      if (s[p.i] !== ':') throw new SyntaxError(`expected ':' in JSON at ${p.i}`);
      p.i++;
      const v = parseValue(p, depth + 1);
      if (!values.has(k)) keys.push(k);
      values.set(k, v);
      ws(p);
      if (s[p.i] === ',') {
        p.i++;
        continue;
      }
      if (s[p.i] === '}') {
        p.i++;
        break;
      }
      throw new SyntaxError(`expected ',' or '}' in JSON at ${p.i}`);
    }
    return '{' + keys.map((k) => JSON.stringify(k) + ':' + values.get(k)).join(',') + '}';
  }
  if (c === '[') {
    p.i++;
    const items = [];
    ws(p);
    if (s[p.i] === ']') {
      p.i++;
      return '[]';
    }
    for (;;) {
      items.push(parseValue(p, depth + 1));
      ws(p);
      if (s[p.i] === ',') {
        p.i++;
        continue;
      }
      if (s[p.i] === ']') {
        p.i++;
        break;
      }
      throw new SyntaxError(`expected ',' or ']' in JSON at ${p.i}`);
    }
    return '[' + items.join(',') + ']';
  }
  if (c === '"') return JSON.stringify(parseString(p));
  for (const lit of ['true', 'false', 'null']) {
    if (s.startsWith(lit, p.i)) {
      p.i += lit.length;
      return lit;
    }
  }
  NUMBER.lastIndex = p.i;
  const m = NUMBER.exec(s);
  if (!m) throw new SyntaxError(`expected a JSON value at ${p.i}`);
  p.i += m[0].length;
  return numberJson(m[0], m[1] !== undefined || m[2] !== undefined);
}

function numberJson(t, float) {
  if (!float) {
    const n = BigInt(t);
    if (t === '-0') return '-0.0';
    if (n >= 0n ? n <= U64_MAX : n >= I64_MIN) return String(n);
  }
  const x = Number(t);
  if (!Number.isFinite(x)) throw new SyntaxError(`number out of range in JSON: ${t}`);
  return f64Text(x);
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function parseString(p) {
  const s = p.s;
  const start = ++p.i;
  let i = start;
  for (; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x22) break;
    if (c === 0x5c) i++;
    else if (c < 0x20) throw new SyntaxError(`a control character in a JSON string at ${i}`);
  }
  if (i >= s.length) throw new SyntaxError('an unterminated JSON string');
  p.i = i + 1;
  const raw = s.slice(start - 1, i + 1);
  const v = JSON.parse(raw);
  if (LONE_SURROGATE.test(v)) {
    throw new SyntaxError('a lone surrogate in a JSON string');
  }
  return v;
}
