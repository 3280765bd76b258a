// The author's view: Config, Interest, Kind, Table and Event (guest-sdk/src/lib.rs, and
// contract/src/interest.rs for Interest).

import {
  SluiceError, toCell, cellToJs, rustDebug, rustTrim,
} from './values.js';
import {
  check, op, DROP, SET_AFTER, SET_BEFORE, RENAME, DROP_COLUMN, ADD_COLUMN, SET_TOPIC, SET_KEY,
  ADD_HEADER, SET_PAYLOAD,
} from './edit.js';

/** What happened to the row; each value is the contract's `kind` string. */
export const Kind = Object.freeze({
  SNAPSHOT_INSERT: 'snapshot_insert',
  INSERT: 'insert',
  UPDATE: 'update',
  DELETE: 'delete',
  TRUNCATE: 'truncate',
});

/** The WIT `kind` enum's order. */
export const KINDS = ['snapshot_insert', 'insert', 'update', 'delete', 'truncate'];

function strings(what, names) {
  if (typeof names === 'string' || names == null || typeof names[Symbol.iterator] !== 'function') {
    throw new TypeError(`${what} takes a list of names`);
  }
  const out = Array.from(names);
  for (const n of out) {
    if (typeof n !== 'string') throw new TypeError(`${what} takes names (strings), not ${typeof n}`);
  }
  return out;
}

/** A transform's configuration: the key/value pairs from the host's config. */
export class Config {
  /** `pairs`: an array of [key, value], or an object {key: value}. */
  constructor(pairs = []) {
    const list = Array.isArray(pairs) ? pairs : Object.entries(pairs);
    this.pairs = list.map(([k, v]) => [String(k), String(v)]);
  }

  /** The value of `key` (the last one when given twice), or undefined. */
  get(key) {
    for (let i = this.pairs.length - 1; i >= 0; i--) {
      if (this.pairs[i][0] === key) return this.pairs[i][1];
    }
    return undefined;
  }

  /** The value of `key`, or a SluiceError that names the key. */
  require(key) {
    const v = this.get(key);
    if (v === undefined) throw new SluiceError(`the transform needs the config key ${rustDebug(key)}`);
    return v;
  }

  /** A comma-separated value: trimmed items, empty ones left out; [] when absent. */
  list(key) {
    const v = this.get(key);
    if (v === undefined) return [];
    return v.split(',').map(rustTrim).filter((s) => s.length > 0);
  }
}

/** The tables and columns a transform needs to see. */
export class Interest {
  /** `tables`: `schema.table` or `schema.*` ([]: every table); `columns`: names, or null: all. */
  constructor(tables = [], columns = null) {
    this.tables = strings('Interest tables', tables);
    this.columns = columns === null || columns === undefined ? null : strings('Interest columns', columns);
  }

  /** Every table and column. */
  static all() {
    return new Interest();
  }

  /** Only these columns' values cross into the sandbox (of every table). */
  static columns(names) {
    return new Interest([], strings('Interest.columns', names));
  }

  /** No column values at all (for transforms that decide by table only). */
  static noColumns() {
    return new Interest([], []);
  }

  /** This interest limited to these tables (`schema.table` or `schema.*`). */
  withTables(tables) {
    return new Interest(strings('withTables', tables), this.columns);
  }

  /** Whether events of `schema.table` reach the transform. A name without a dot matches a
   * table of that name in any schema. */
  matchesTable(schema, table) {
    if (this.tables.length === 0) return true;
    for (const t of this.tables) {
      const dot = t.indexOf('.');
      if (dot < 0) {
        if (t === table) return true;
      } else {
        const s = t.slice(0, dot);
        const n = t.slice(dot + 1);
        if (s === schema && (n === '*' || n === table)) return true;
      }
    }
    return false;
  }

  /** The indexes of `columns` this interest asks for, in table order. */
  projection(columns) {
    const out = [];
    for (let i = 0; i < columns.length; i++) {
      if (this.columns === null || this.columns.includes(columns[i])) out.push(i);
    }
    return out;
  }
}

/** The Interest a transform object declares (its optional `interest()`). */
export function interestOf(obj) {
  if (typeof obj.interest !== 'function') return Interest.all();
  const i = obj.interest();
  if (i instanceof Interest) return i;
  if (i && typeof i === 'object') return new Interest(i.tables ?? [], i.columns ?? null);
  throw new TypeError('interest() must return an Interest');
}

/** A table version as the host describes it. */
export class Table {
  constructor(schema, table, columns, primaryKey, projection) {
    this.schema = schema;
    this.table = table;
    this.columns = Object.freeze(Array.from(columns));
    this.primaryKey = Object.freeze(Array.from(primaryKey));
    /** Name -> index into `columns` (the first column of that name). */
    this.index = new Map();
    for (let i = 0; i < this.columns.length; i++) {
      if (!this.index.has(this.columns[i])) this.index.set(this.columns[i], i);
    }
    // Column index -> slot in the event's projected values; then name -> slot.
    const slots = new Array(this.columns.length).fill(-1);
    for (let slot = 0; slot < projection.length; slot++) {
      if (projection[slot] < slots.length) slots[projection[slot]] = slot;
    }
    this.slots = slots;
    /** Name -> slot, for the columns in the transform's interest. */
    this.slotOf = new Map();
    for (const [name, i] of this.index) {
      if (slots[i] >= 0) this.slotOf.set(name, slots[i]);
    }
  }
}

/** The drop op, shared: a transform that drops many events allocates nothing for them. */
export const DROP_OP = Object.freeze(op(DROP));

/**
 * Bytes for a key, header or payload: a string stays a string (the answer's encoder writes its
 * UTF-8 in place: an encoded copy here would be one more buffer for the GC to free); bytes are
 * copied, as the value is the transform's no more.
 */
function toBytes(what, v) {
  if (typeof v === 'string') return v;
  if (v instanceof Uint8Array) return v.slice();
  if (v instanceof ArrayBuffer) return new Uint8Array(v.slice(0));
  throw new TypeError(`${what} takes a string or a Uint8Array`);
}

function text(what, v) {
  if (typeof v !== 'string') throw new TypeError(`${what} takes a string`);
  return v;
}

// Words of a packed view (9 per event): kind, table, pos (2), row, after start/len, before
// start/len.
const W_POS = 2;
const W_ROW = 4;
const W_AS = 5;
const W_BS = 7;

/**
 * A change event as a transform sees it, plus the changes the transform records. Values are
 * read from the batch when asked for (each `get` decodes its cell again), so an event costs
 * little more than the fields a transform reads.
 */
export class Event {
  /** @internal: events are made by the component's `transform` and by the harness. */
  constructor(table, kind, batch, word) {
    this._t = table;
    /** The contract's kind string (`Kind.INSERT` …). */
    this.kind = kind;
    this._batch = batch;
    this._w = word; // this event's first word in batch.views
    this._set = null; // ops of set() on projected columns, the latest first (chained by `seen`)
    // Ops of the current output, chained: the first and the last.
    this._op = null;
    this._last = null;
    this._done = null; // ops of outputs finished by split()
  }

  get schema() {
    return this._t.schema;
  }

  get table() {
    return this._t.table;
  }

  /** Every column of the table, in order. */
  get columns() {
    return this._t.columns;
  }

  /** Indexes into `columns` of the primary key. */
  get primaryKey() {
    return this._t.primaryKey;
  }

  /** The transaction's start in the binlog (a number; a bigint past 2^53), and the row in it. */
  get position() {
    const v = this._batch.views;
    const hi = v[this._w + W_POS + 1];
    const pos = hi < 0x200000 ? hi * 4294967296 + v[this._w + W_POS] : (BigInt(hi) << 32n) | BigInt(v[this._w + W_POS]);
    return { pos, row: v[this._w + W_ROW] };
  }

  /** The value in image `img` (0: after, 1: before) at `slot`, or undefined. */
  _value(img, slot) {
    for (let x = this._set; x !== null; x = x.seen) {
      if (x.k === (img === 0 ? SET_AFTER : SET_BEFORE) && this._t.slots[x.a] === slot) return cellToJs(x.b);
    }
    const v = this._batch.views;
    const w = this._w + (img === 0 ? W_AS : W_BS);
    return slot < v[w + 1] ? this._batch.read(v[w] + slot) : undefined;
  }

  /**
   * The value of a column in the row after the change (before it, for a delete): null for
   * NULL; undefined when the column does not exist or is not in the transform's interest.
   */
  get(column) {
    const s = this._t.slotOf.get(column);
    if (s === undefined) return undefined;
    return this._value(this.kind === 'delete' ? 1 : 0, s);
  }

  /** The value of a column in the row before the change (update and delete). */
  getBefore(column) {
    const s = this._t.slotOf.get(column);
    return s === undefined ? undefined : this._value(1, s);
  }

  /**
   * The WIT cell type of `get(column)`'s value ('null', 'int', 'uint', 'float', 'double',
   * 'decimal', 'text', 'bytes', 'date', 'datetime', 'timestamp', 'time', 'json'), or undefined
   * as `get` is. It tells a DOUBLE that holds an integer from an integer column.
   */
  cellType(column) {
    const s = this._t.slotOf.get(column);
    if (s === undefined) return undefined;
    const img = this.kind === 'delete' ? 1 : 0;
    for (let x = this._set; x !== null; x = x.seen) {
      if (x.k === (img === 0 ? SET_AFTER : SET_BEFORE) && this._t.slots[x.a] === s) return x.b.tag;
    }
    const v = this._batch.views;
    const w = this._w + (img === 0 ? W_AS : W_BS);
    return s < v[w + 1] ? this._batch.tag(v[w] + s) : undefined;
  }

  _push(o) {
    if (this._op === null) {
      this._op = o;
    } else {
      // The shared drop op is only ever alone: chaining after it takes a copy.
      if (this._op === DROP_OP) this._op = this._last = op(DROP);
      this._last.next = o;
    }
    this._last = o;
  }

  /** @internal The current output's ops, as a list. */
  _list() {
    const list = [];
    for (let o = this._op; o !== null; o = o.next) list.push(o);
    return list;
  }

  _index(column) {
    const i = this._t.index.get(column);
    if (i === undefined) {
      throw new SluiceError(`${this._t.schema}.${this._t.table} has no column ${rustDebug(String(column))}`);
    }
    return i;
  }

  /** Sets a column (in the row after the change; in the row before it for a delete). */
  set(column, value) {
    const i = this._index(column);
    const cell = toCell(value);
    const img = this.kind === 'delete' ? 1 : 0;
    const o = op(img === 0 ? SET_AFTER : SET_BEFORE, i, cell);
    // A later get() sees the new value, as in Rust.
    if (this._t.slots[i] >= 0) {
      o.seen = this._set;
      this._set = o;
    }
    this._push(o);
  }

  /** Sets a column of the row before the change (update and delete). */
  setBefore(column, value) {
    const i = this._index(column);
    this._push(op(SET_BEFORE, i, toCell(value)));
  }

  /** Leaves this event (the current output) out. */
  dropEvent() {
    this._push(this._op === null ? DROP_OP : op(DROP));
  }

  /** Renames a column in the published event. */
  rename(column, newName) {
    const i = this._index(column);
    this._push(op(RENAME, i, text('rename', newName)));
  }

  /** Leaves a column out of the published event. */
  remove(column) {
    this._push(op(DROP_COLUMN, this._index(column)));
  }

  /**
   * Adds a column after the table's, with `value` in each row image the event has. Its name
   * must be new; a truncate event takes none.
   */
  add(column, value) {
    this._push(op(ADD_COLUMN, text('add', column), toCell(value)));
    // The host checks the same rules on the whole edit.
    const list = this._list();
    const e = check(this.kind, this._t.columns, list);
    if (e !== null) {
      // Unchain the op just added.
      list.pop();
      this._op = list.length ? list[0] : null;
      this._last = list.length ? list[list.length - 1] : null;
      if (this._last !== null) this._last.next = null;
      throw new SluiceError(`${this._t.schema}.${this._t.table}: ${e}`);
    }
  }

  /** Publishes to `topic` instead of the configured topic. */
  setTopic(topic) {
    this._push(op(SET_TOPIC, text('setTopic', topic)));
  }

  /** Uses `key` (a string or a Uint8Array) as the Kafka key. */
  setKey(key) {
    this._push(op(SET_KEY, toBytes('setKey', key)));
  }

  addHeader(key, value) {
    this._push(op(ADD_HEADER, text('addHeader', key), toBytes('addHeader', value)));
  }

  /** Publishes `payload` (a string or a Uint8Array) instead of the contract's JSON. */
  setPayload(payload) {
    this._push(op(SET_PAYLOAD, toBytes('setPayload', payload)));
  }

  /** Starts another output event, a copy of the input event; later calls apply to it. */
  split() {
    if (this._done === null) this._done = [];
    this._done.push(this._list());
    this._op = null;
    this._last = null;
  }

  /** @internal The recorded outputs' ops; [] when the event is published unchanged. */
  _outputs() {
    const ops = this._list();
    if (this._done === null) return ops.length ? [ops] : [];
    return this._done.concat([ops]);
  }

  /** @internal Which event this is, for error messages. */
  _describe() {
    const { pos, row } = this.position;
    return `the ${this.kind} event of ${this._t.schema}.${this._t.table} at pos ${pos} row ${row}`;
  }

  toString() {
    const { pos, row } = this.position;
    return `Event(${this.kind} ${this._t.schema}.${this._t.table} at ${pos}#${row})`;
  }
}
