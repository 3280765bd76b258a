// The WIT exports (guest-sdk/src/abi.rs): `init` builds the author's object, `transform`
// reads a batch's packed views and cells, calls `process` per event and encodes the `edits`.
//
// componentize-js lifts a `result<T, string>` return from a `{tag: 'ok' | 'err', val}` object
// (a plain return value is `ok`). A thrown Error is *not* turned into `err`: it traps the
// instance. So every exception is caught here and returned as `{tag: 'err', val: text}`.

import { hostLog } from './host.js';
import { SluiceError, Batch, CELL_BYTES, VIEW_BYTES } from './values.js';
import {
  Config, Event, Table, KINDS, DROP_OP, interestOf,
} from './event.js';

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error'];

/** Writes to the host's log, tagged with the transform's name (stderr when run natively). */
export function log(level, text) {
  if (!LEVELS.includes(level)) {
    throw new TypeError(`log level ${String(level)}: use trace, debug, info, warn or error`);
  }
  if (hostLog) hostLog(level, String(text));
  else console.error(`[${level}] ${String(text)}`);
}

function show(v) {
  try {
    return String(v);
  } catch {
    return Object.prototype.toString.call(v);
  }
}

/**
 * The error text the host receives for an exception: a SluiceError's message alone (as Rust's
 * `Err(text)`); an Error's `name: message`, where it happened, and its stack; anything else
 * its string.
 */
export function errorText(e, event) {
  if (e instanceof SluiceError) return e.message;
  const where = event ? ` (in process() on ${event._describe()})` : ' (in the transform\'s constructor)';
  if (!(e instanceof Error)) return show(e) + where;
  const head = e.message ? `${show(e.name)}: ${show(e.message)}` : show(e.name);
  let stack = typeof e.stack === 'string' ? e.stack : '';
  // V8 starts the stack with the error's own line; SpiderMonkey lists the frames only.
  if (stack.startsWith(head)) stack = stack.slice(head.length);
  // Frames of componentize-js's glue (its initializer script) say nothing about the transform.
  stack = stack.split('\n').filter((l) => l.trim() && !l.includes('initializer.js')).join('\n');
  let text = head + where + (stack ? '\n' + stack : '');
  if (e.cause !== undefined) {
    text += '\ncaused by: ' + (e.cause instanceof Error ? `${show(e.cause.name)}: ${show(e.cause.message)}` : show(e.cause));
  }
  return text;
}

function err(text) {
  return { tag: 'err', val: text };
}

const ENCODER = new TextEncoder();
let scratch = new Uint8Array(64 << 10);

// The answer's records, reused from call to call. componentize-js lowers the answer while
// `transform` returns and never looks at it again; records made afresh each call live through
// the call, so the GC moves them to its tenured heap, which it empties only in a full GC, and
// that comes later than the sandbox's memory cap. Reused, they are no garbage at all.
const OUTPUTS = [];
const OPS = [];
const CELLS = [];
const OUTPUT_POOL = [];
const OP_POOL = [];
const CELL_POOL = [];

function span() {
  return { start: 0, len: 0 };
}

const NON_ASCII = /[^\x00-\x7f]/;
const SURROGATE = /[\uD800-\uDFFF]/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** The length of a string's UTF-8 (its lone surrogates already replaced). */
function utf8Length(s) {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c < 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

let binary = new Uint8Array(4 << 10);
const BINARY_SPANS = [];

/**
 * Builds the columnar answer: outputs, ops, cells (WIT shapes) and the bytes they point at.
 *
 * The answer's texts are written with one `encodeInto` per call, at the end: each call of it
 * leaves some memory behind in the component until a full GC (measured: ~36 bytes), which one
 * call per text would pile up past the memory cap. Texts go first in `data` (their UTF-8 lengths
 * are counted as they come), bytes after them.
 */
class Encoder {
  constructor() {
    this.nOutputs = 0;
    this.nOps = 0;
    this.nCells = 0;
    this.texts = '';
    this.textBytes = 0;
    this.binaryBytes = 0;
    this.nBinary = 0;
    this.dropAt = -1;
    this.lastText = null;
    this.lastCell = -1;
  }

  /** Fills span `sp` with bytes, or with a string's UTF-8. */
  bytes(sp, b) {
    if (typeof b === 'string') return this.text(sp, b);
    if (this.binaryBytes + b.length > binary.length) {
      let size = binary.length * 2;
      while (size < this.binaryBytes + b.length) size *= 2;
      const bigger = new Uint8Array(size);
      bigger.set(binary.subarray(0, this.binaryBytes));
      binary = bigger;
    }
    binary.set(b, this.binaryBytes);
    sp.start = this.binaryBytes; // moved past the texts in finish()
    sp.len = b.length;
    this.binaryBytes += b.length;
    BINARY_SPANS[this.nBinary++] = sp;
    return sp;
  }

  /** Fills span `sp` with a string's UTF-8. */
  text(sp, s) {
    let n = s.length;
    if (NON_ASCII.test(s)) {
      // As TextEncoder does: a lone surrogate is U+FFFD (and cannot pair across texts).
      if (SURROGATE.test(s)) s = s.replace(LONE_SURROGATE, '\uFFFD');
      n = utf8Length(s);
    }
    this.texts += s;
    sp.start = this.textBytes;
    sp.len = n;
    this.textBytes += n;
    return sp;
  }

  newOp(tag) {
    let o = OP_POOL[this.nOps];
    if (o === undefined) {
      o = {
        tag: '', val: null, t: [0, 0], s1: span(), s2: span(),
      };
      OP_POOL[this.nOps] = o;
    }
    OPS[this.nOps++] = o;
    o.tag = tag;
    return o;
  }

  /** Appends cell `c`; returns its index. */
  cell(c) {
    // Ops may share a cell: a transform that sets one text on many events ('<redacted>') sends
    // it once per call.
    if (c.tag === 'text' && c.val === this.lastText) return this.lastCell;
    let w = CELL_POOL[this.nCells];
    if (w === undefined) {
      w = { tag: '', val: null, s: span() };
      CELL_POOL[this.nCells] = w;
    }
    CELLS[this.nCells] = w;
    w.tag = c.tag;
    switch (c.tag) {
      case 'text':
        this.lastText = c.val;
        this.lastCell = this.nCells;
        w.val = this.text(w.s, c.val);
        break;
      case 'decimal':
      case 'json':
        w.val = this.text(w.s, c.val);
        break;
      case 'bytes':
        w.val = this.bytes(w.s, c.val);
        break;
      default:
        w.val = c.val === undefined ? null : c.val;
    }
    return this.nCells++;
  }

  /** Appends one op. */
  op(op) {
    let o;
    switch (op.k) {
      case 0:
        this.newOp('drop');
        break;
      case 1:
      case 2:
        o = this.newOp(op.k === 1 ? 'set-after' : 'set-before');
        o.t[0] = op.a;
        o.t[1] = this.cell(op.b);
        o.val = o.t;
        break;
      case 3:
        o = this.newOp('rename-column');
        o.t[0] = op.a;
        o.t[1] = this.text(o.s1, op.b);
        o.val = o.t;
        break;
      case 4:
        o = this.newOp('drop-column');
        o.val = op.a;
        break;
      case 5:
        o = this.newOp('add-column');
        o.t[0] = this.text(o.s1, op.a);
        o.t[1] = this.cell(op.b);
        o.val = o.t;
        break;
      case 6:
        o = this.newOp('set-topic');
        o.val = this.text(o.s1, op.a);
        break;
      case 7:
        o = this.newOp('set-key');
        o.val = this.bytes(o.s1, op.a);
        break;
      case 8:
        o = this.newOp('add-header');
        o.t[0] = this.text(o.s1, op.a);
        o.t[1] = this.bytes(o.s2, op.b);
        o.val = o.t;
        break;
      case 9:
        o = this.newOp('set-payload');
        o.val = this.bytes(o.s1, op.a);
        break;
      default:
        throw new Error(`unknown op ${op.k}`);
    }
  }

  newOutput(event, start, len) {
    let o = OUTPUT_POOL[this.nOutputs];
    if (o === undefined) {
      o = { event: 0, opsStart: 0, opsLen: 0 };
      OUTPUT_POOL[this.nOutputs] = o;
    }
    OUTPUTS[this.nOutputs++] = o;
    o.event = event;
    o.opsStart = start;
    o.opsLen = len;
  }

  /** One output of event `event`: the ops of `list`. */
  output(event, list) {
    const start = this.nOps;
    for (const op of list) this.op(op);
    this.newOutput(event, start, list.length);
  }

  /** One output: the ops chained from `first`. */
  chain(event, first) {
    if (first === DROP_OP) {
      // Every dropped output of the call points at one shared drop op (an output's ops are a
      // range of `ops`, and ranges may overlap).
      if (this.dropAt < 0) {
        this.dropAt = this.nOps;
        this.newOp('drop');
      }
      this.newOutput(event, this.dropAt, 1);
      return;
    }
    const start = this.nOps;
    for (let o = first; o !== null; o = o.next) this.op(o);
    this.newOutput(event, start, this.nOps - start);
  }

  finish() {
    OUTPUTS.length = this.nOutputs;
    OPS.length = this.nOps;
    CELLS.length = this.nCells;
    const size = this.textBytes + this.binaryBytes;
    if (scratch.length < size) {
      let n = scratch.length * 2;
      while (n < size) n *= 2;
      scratch = new Uint8Array(n);
    }
    const data = scratch;
    if (this.textBytes > 0 && ENCODER.encodeInto(this.texts, data).written !== this.textBytes) {
      throw new Error('the answer\'s texts did not encode to their counted length');
    }
    if (this.binaryBytes > 0) {
      data.set(binary.subarray(0, this.binaryBytes), this.textBytes);
      for (let i = 0; i < this.nBinary; i++) BINARY_SPANS[i].start += this.textBytes;
    }
    // Keep the buffers for the next calls, unless one was huge (wasm memory never shrinks).
    if (scratch.length > 1 << 20) scratch = new Uint8Array(64 << 10);
    if (binary.length > 1 << 20) binary = new Uint8Array(4 << 10);
    return {
      outputs: OUTPUTS,
      ops: OPS,
      cells: CELLS,
      data: data.subarray(0, size),
    };
  }
}

/**
 * Frees the request's buffers now. componentize-js copies each list argument out of the linear
 * memory into a fresh ArrayBuffer, whose bytes SpiderMonkey frees only when a full GC runs; it
 * runs once tens of MiB have piled up, which is more than the sandbox allows (the memory cap
 * stops the instance, it does not make the GC run). Detaching a buffer frees its bytes at once.
 * An event kept past its process() call cannot be read afterwards (it was never valid there).
 */
function release(...views) {
  for (const v of views) {
    const b = v.buffer;
    if (typeof b.transfer === 'function' && !b.detached) b.transfer(0);
  }
}

/** The instance's state: the author's object, and the tables the host described. */
let runtime = null;

/** Refuses a Promise from process(): the event's edits must be known when it returns. */
export function promised(r) {
  if (r !== null && typeof r === 'object' && typeof r.then === 'function') {
    r.then(undefined, () => {});
    throw new TypeError('process(event) returned a Promise: it must be synchronous (no async)');
  }
}

/**
 * The component's exports for a transform class:
 * `export const { init, transform } = exportTransform(MyTransform)`.
 * The class is built once per instance (`new MyTransform(config)`), may declare `interest()`,
 * and has `process(event)`, called for every event in binlog order.
 */
export function exportTransform(Class) {
  if (typeof Class !== 'function') throw new TypeError('exportTransform takes the transform class');

  // Named apart from the exports, so that stack traces say whose frame it is.
  function sluiceInit(config) {
    try {
      const obj = new Class(new Config(config));
      if (typeof obj.process !== 'function') {
        throw new SluiceError(`${Class.name || 'the transform class'} has no process(event) method`);
      }
      const interest = interestOf(obj);
      runtime = { obj, tables: new Map() };
      return {
        tables: interest.tables.slice(),
        columns: interest.columns === null ? undefined : interest.columns.slice(),
      };
    } catch (e) {
      return err(errorText(e, null));
    }
  }

  function sluiceTransform(tables, events, cells, data) {
    const rt = runtime;
    if (rt === null) return err('transform called before init');
    let event = null;
    try {
      for (const t of tables) {
        rt.tables.set(t.id, new Table(t.schema, t.table, t.columns, t.primaryKey, t.projection));
      }
      if (events.length % VIEW_BYTES !== 0 || cells.length % CELL_BYTES !== 0) {
        return err('events or cells are not whole packed records');
      }
      const batch = new Batch(events, cells, data);
      const views = batch.views;
      const out = new Encoder();
      const obj = rt.obj;
      let lastId = -1;
      let table = null;
      for (let i = 0, w = 0, n = views.length; w < n; i++, w += 9) {
        const k = views[w] & 0xff;
        if (k > 4) return err(`unknown event kind ${k}`);
        if (views[w + 1] !== lastId) {
          lastId = views[w + 1];
          table = rt.tables.get(lastId);
          if (table === undefined) return err(`unknown table id ${lastId}`);
        }
        event = new Event(table, KINDS[k], batch, w);
        const r = obj.process(event);
        if (r !== undefined) promised(r);
        if (event._done !== null) {
          for (const list of event._done) out.output(i, list);
          out.output(i, event._list());
        } else if (event._op !== null) {
          out.chain(i, event._op);
        }
      }
      event = null;
      return out.finish();
    } catch (e) {
      return err(errorText(e, event));
    } finally {
      release(events, cells, data);
    }
  }

  return { init: sluiceInit, transform: sluiceTransform };
}
