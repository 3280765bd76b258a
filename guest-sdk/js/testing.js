// The native test harness (guest-sdk/src/testing.rs): run a transform under `node --test`,
// with the host's semantics (table interest, column projection, edits) and no wasm.
//
//   import { Harness, TestEvent } from 'sluice-transform/testing';
//   const h = new Harness(Redact, { columns: 'email' });
//   const [out] = h.run([TestEvent.insert('shop', 'users', { id: 1, email: 'a@b.c' })]);
//   assert.equal(out.get('email'), '<redacted>');

import {
  SluiceError, toCell, cellToJs, cellJsonValue, canonicalJson, NULL_CELL, Batch, packCells,
} from './lib/values.js';
import { Config, Event, Table, KINDS, interestOf } from './lib/event.js';
import { promised } from './lib/component.js';
import {
  check, apply, op, SET_AFTER, SET_BEFORE, ADD_COLUMN, SET_KEY, ADD_HEADER, SET_PAYLOAD,
} from './lib/edit.js';

const UTF8 = new TextEncoder();

/**
 * A cell as the host holds it after reading it: JSON text parsed and re-written (the host
 * refuses text that is not JSON).
 */
function hostCell(c) {
  if (c.tag !== 'json') return c;
  try {
    return { tag: 'json', val: canonicalJson(c.val) };
  } catch (e) {
    throw new SluiceError(`a JSON value that is not JSON: ${e.message}`);
  }
}

function columnsOf(cols, what) {
  let entries;
  if (cols instanceof Map) entries = [...cols.entries()];
  else if (Array.isArray(cols)) entries = cols;
  else if (cols && typeof cols === 'object') entries = Object.entries(cols);
  else throw new TypeError(`${what} takes {column: value} or [[column, value], …]`);
  return {
    names: entries.map(([k]) => String(k)),
    cells: entries.map(([, v]) => hostCell(toCell(v))),
  };
}

/** An input event for tests. `after`/`before` are the row images' values. */
export class TestEvent {
  constructor({ kind, schema, table, columns, primaryKey, after, before }) {
    if (!KINDS.includes(kind)) throw new TypeError(`unknown kind ${kind}`);
    this.kind = kind;
    this.schema = schema;
    this.table = table;
    this.columns = columns;
    this.primaryKey = primaryKey;
    this._after = after; // cells
    this._before = before;
  }

  /** The row after the change (empty for a delete). */
  get after() {
    return this._after.map(cellToJs);
  }

  /** The row before the change (empty for an insert). */
  get before() {
    return this._before.map(cellToJs);
  }

  /** `cols`: {column: value} (or [[column, value], …] when a name looks like a number). */
  static insert(schema, table, cols) {
    const { names, cells } = columnsOf(cols, 'TestEvent.insert');
    return new TestEvent({
      kind: 'insert', schema, table, columns: names, primaryKey: [0], after: cells, before: [],
    });
  }

  /** The columns are `after`'s; `before` gives the old values in the same order. */
  static update(schema, table, before, after) {
    const a = columnsOf(after, 'TestEvent.update');
    const b = columnsOf(before, 'TestEvent.update');
    return new TestEvent({
      kind: 'update', schema, table, columns: a.names, primaryKey: [0], after: a.cells, before: b.cells,
    });
  }

  static delete(schema, table, before) {
    const { names, cells } = columnsOf(before, 'TestEvent.delete');
    return new TestEvent({
      kind: 'delete', schema, table, columns: names, primaryKey: [0], after: [], before: cells,
    });
  }

  /** A table-level truncate event: no columns, no values. */
  static truncate(schema, table) {
    return new TestEvent({
      kind: 'truncate', schema, table, columns: [], primaryKey: [], after: [], before: [],
    });
  }

  /** Parses one event in the contract's JSON format (contract/src/json.rs `parse_event`). */
  static fromJson(line) {
    let v;
    try {
      v = parseTree(line);
    } catch (e) {
      throw new SluiceError(`not JSON: ${e.message}`);
    }
    const field = (k) => {
      const f = v.t === 'o' ? v.map.get(k) : undefined;
      if (f === undefined || f.t !== 's') throw new SluiceError(`missing string field "${k}"`);
      return f.v;
    };
    const kind = field('kind');
    if (!KINDS.includes(kind)) throw new SluiceError(`unknown kind ${JSON.stringify(kind)}`);
    const schema = field('schema');
    const table = field('table');
    const get = (x, k) => (x !== undefined && x.t === 'o' ? x.map.get(k) : undefined);
    const top = (k) => get(v, k);
    if (kind === 'truncate') {
      const empty = (x) => x === undefined || x.t === 'null' || (x.t === 'a' && x.items.length === 0)
        || (x.t === 'o' && x.keys.length === 0);
      if (!(empty(top('columnnames')) && empty(top('columnvalues')) && empty(top('oldkeys')))) {
        throw new SluiceError('a "truncate" event has no row: its columnnames and columnvalues must be [] and its oldkeys {}');
      }
      return TestEvent.truncate(schema, table);
    }
    const names = (x) => (x !== undefined && x.t === 'a' ? x.items.filter((n) => n.t === 's').map((n) => n.v) : []);
    const values = (x) => (x !== undefined && x.t === 'a' ? x.items.map(treeCell) : []);
    let columns = names(top('columnnames'));
    if (columns.length === 0) columns = names(get(top('oldkeys'), 'keynames'));
    const after = kind === 'delete' ? [] : values(top('columnvalues'));
    const before = values(get(top('oldkeys'), 'keyvalues'));
    const same = (image, what) => {
      if (image.length !== columns.length) {
        throw new SluiceError(`${what} has ${image.length} values for ${columns.length} columns: a ${kind} event's row images list every column`);
      }
    };
    if (kind !== 'delete') same(after, 'columnvalues');
    if (kind === 'update' || kind === 'delete') same(before, 'oldkeys.keyvalues');
    return new TestEvent({ kind, schema, table, columns, primaryKey: [0], after, before });
  }
}

// A JSON tree that keeps what the contract's reader needs: object keys in order (serde_json's
// preserve_order: first position, last value), and numbers' text.
function parseTree(text) {
  const p = { s: text, i: 0 };
  const v = node(p, 0);
  skip(p);
  if (p.i !== text.length) throw new SyntaxError(`trailing characters at ${p.i}`);
  return v;
}

function skip(p) {
  while (p.i < p.s.length && ' \t\n\r'.includes(p.s[p.i])) p.i++;
}

const NUMBER = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const STRING = /"(?:[^"\\\u0000-\u001f]|\\.)*"/y;

function node(p, depth) {
  if (depth > 128) throw new SyntaxError('nested too deeply');
  skip(p);
  const s = p.s;
  const start = p.i;
  const c = s[p.i];
  if (c === '{' || c === '[') {
    p.i++;
    const obj = c === '{';
    const keys = [];
    const map = new Map();
    const items = [];
    skip(p);
    if (s[p.i] === (obj ? '}' : ']')) {
      p.i++;
    } else {
      for (;;) {
        if (obj) {
          skip(p);
          const k = node(p, depth + 1);
          if (k.t !== 's') throw new SyntaxError(`expected a key at ${p.i}`);
          skip(p);
          if (s[p.i++] !== ':') throw new SyntaxError(`expected ':' at ${p.i - 1}`);
          const v = node(p, depth + 1);
          if (!map.has(k.v)) keys.push(k.v);
          map.set(k.v, v);
        } else {
          items.push(node(p, depth + 1));
        }
        skip(p);
        const d = s[p.i++];
        if (d === ',') continue;
        if (d === (obj ? '}' : ']')) break;
        throw new SyntaxError(`expected ',' or '${obj ? '}' : ']'}' at ${p.i - 1}`);
      }
    }
    const raw = s.slice(start, p.i);
    return obj ? { t: 'o', keys, map, raw } : { t: 'a', items, raw };
  }
  if (c === '"') {
    STRING.lastIndex = p.i;
    const m = STRING.exec(s);
    if (!m) throw new SyntaxError(`a bad string at ${p.i}`);
    p.i += m[0].length;
    const v = JSON.parse(m[0]);
    if (LONE_SURROGATE.test(v)) throw new SyntaxError(`a lone surrogate in a string at ${start}`);
    return { t: 's', v, raw: m[0] };
  }
  for (const [lit, t] of [['true', 'b'], ['false', 'b'], ['null', 'null']]) {
    if (s.startsWith(lit, p.i)) {
      p.i += lit.length;
      return { t, v: lit === 'true', raw: lit };
    }
  }
  NUMBER.lastIndex = p.i;
  const m = NUMBER.exec(s);
  if (!m) throw new SyntaxError(`expected a value at ${p.i}`);
  p.i += m[0].length;
  return { t: 'n', raw: m[0], float: m[1] !== undefined || m[2] !== undefined };
}

const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;
const U64_MAX = 2n ** 64n - 1n;

/** contract/src/json.rs `from_json`: a JSON value of an event as a cell. */
function treeCell(n) {
  switch (n.t) {
    case 'null':
      return NULL_CELL;
    case 'b':
      return { tag: 'int', val: n.v ? 1 : 0 };
    case 's':
      return { tag: 'text', val: n.v };
    case 'n': {
      if (!n.float && n.raw !== '-0') {
        const i = BigInt(n.raw);
        if (i >= I64_MIN && i <= I64_MAX) return toCell(i);
        if (i > 0n && i <= U64_MAX) return toCell(i);
      }
      const x = Number(n.raw);
      if (!Number.isFinite(x)) throw new SluiceError(`not JSON: number out of range: ${n.raw}`);
      return { tag: 'double', val: x };
    }
    default:
      return hostCell({ tag: 'json', val: n.raw });
  }
}

const LOSSY = new TextDecoder();

/** One output event. `after`/`before` are the row images' values. */
export class Output {
  /** @internal From an edited record (edit.js `apply`'s target, whose images hold cells). */
  constructor(r) {
    this.kind = r.kind;
    this.schema = r.schema;
    this.table = r.table;
    this.columns = r.columns;
    /** Indexes into `columns` of the primary key (re-numbered when columns are removed). */
    this.primaryKey = r.primaryKey;
    this._after = r.after;
    this._before = r.before;
    /** The topic the transform chose (null: the configured one). */
    this.topic = r.topic;
    /** The Kafka key (a Uint8Array), or null. */
    this.key = r.key;
    /** [key, Uint8Array] pairs. */
    this.headers = r.headers;
    /** The message value the transform set (a Uint8Array), or null for the contract's JSON. */
    this.payload = r.payload;
  }

  get after() {
    return this._after.map(cellToJs);
  }

  get before() {
    return this._before.map(cellToJs);
  }

  /** A column of the row after the change (before it, for a delete), or undefined. */
  get(column) {
    const i = this.columns.indexOf(column);
    if (i < 0) return undefined;
    const c = (this.kind === 'delete' ? this._before : this._after)[i];
    return c === undefined ? undefined : cellToJs(c);
  }

  /** The message value: the payload if the transform set one, else the contract's JSON. */
  valueJson() {
    if (this.payload !== null) {
      const text = LOSSY.decode(this.payload);
      try {
        return JSON.parse(text);
      } catch {
        return text;
      }
    }
    const noRow = this.kind === 'delete' || this.kind === 'truncate';
    const old = this.kind === 'update' || this.kind === 'delete';
    return {
      kind: this.kind,
      schema: this.schema,
      table: this.table,
      columnnames: noRow ? [] : this.columns.slice(),
      columnvalues: noRow ? [] : this._after.map(cellJsonValue),
      oldkeys: old ? { keynames: this.columns.slice(), keyvalues: this._before.map(cellJsonValue) } : {},
    };
  }

  /** What `sluice transform test --envelope` prints: routing plus the value. */
  envelopeJson() {
    return {
      topic: this.topic,
      key: this.key === null ? null : LOSSY.decode(this.key),
      headers: this.headers.map(([k, v]) => [k, LOSSY.decode(v)]),
      value: this.valueJson(),
    };
  }
}

/** Applies one edit's ops to a copy of `ev` with the host's rules; null when dropped. */
function applyOps(ev, ops) {
  const bytes = (b) => (typeof b === 'string' ? UTF8.encode(b) : b);
  const hostOps = ops.map((o) => {
    switch (o.k) {
      case SET_AFTER:
      case SET_BEFORE:
      case ADD_COLUMN:
        return op(o.k, o.a, hostCell(o.b));
      case SET_KEY:
      case SET_PAYLOAD:
        return op(o.k, bytes(o.a));
      case ADD_HEADER:
        return op(o.k, o.a, bytes(o.b));
      default:
        return o;
    }
  });
  const e = check(ev.kind, ev.columns, hostOps);
  if (e !== null) throw new SluiceError(e);
  const r = {
    kind: ev.kind,
    schema: ev.schema,
    table: ev.table,
    columns: ev.columns.slice(),
    primaryKey: ev.primaryKey.slice(),
    after: ev._after.slice(),
    before: ev._before.slice(),
    topic: null,
    key: null,
    headers: [],
    payload: null,
  };
  return apply(r, hostOps) ? new Output(r) : null;
}

/** Runs a transform natively, as the host would. */
export class Harness {
  /** Builds `new Class(config)`; `config`: {key: value} or [[key, value], …]. */
  constructor(Class, config = {}) {
    this.transform = new Class(new Config(config));
    if (typeof this.transform.process !== 'function') {
      throw new TypeError(`${Class.name || 'the transform class'} has no process(event) method`);
    }
    this.interest = interestOf(this.transform);
  }

  /**
   * Runs the transform over `events` (TestEvents), in order, and returns the published events
   * (Outputs). An exception of the transform's, or an edit the host would refuse, is thrown.
   */
  run(events) {
    const out = [];
    events.forEach((ev, n) => {
      if (!(ev instanceof TestEvent)) throw new TypeError('Harness.run takes TestEvents');
      if (!this.interest.matchesTable(ev.schema, ev.table)) {
        out.push(applyOps(ev, []));
        return;
      }
      const projection = this.interest.projection(ev.columns);
      const table = new Table(ev.schema, ev.table, ev.columns, ev.primaryKey, projection);
      const pick = (image) => {
        if (image.length === 0) return [];
        return projection.map((i) => {
          if (i >= image.length) throw new TypeError(`${ev.schema}.${ev.table}: a row image without column ${i}`);
          return image[i];
        });
      };
      // The event crosses as the host sends it: packed, its projected values only.
      const after = pick(ev._after);
      const before = pick(ev._before);
      const { cells, data } = packCells(after.concat(before));
      const view = new Uint32Array([KINDS.indexOf(ev.kind), 0, 0, 0, n, 0, after.length, after.length, before.length]);
      const event = new Event(table, ev.kind, new Batch(new Uint8Array(view.buffer), cells, data), 0);
      const r = this.transform.process(event);
      if (r !== undefined) promised(r);
      const outputs = event._outputs();
      if (outputs.length === 0) out.push(applyOps(ev, []));
      for (const ops of outputs) {
        const o = applyOps(ev, ops);
        if (o !== null) out.push(o);
      }
    });
    return out;
  }
}
