// The packed request codec (contract/src/packed.rs) and the WIT exports that drive a transform
// (guest-sdk/src/abi.rs), run natively: `exportTransform`'s init/transform are plain functions.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  exportTransform, Interest, SluiceError, Float32, Decimal, Json, Date_, DateTime, Timestamp, Time,
} from '../index.js';
import { Batch } from '../lib/values.js';
import { packCells, packViews, tableInfo, spanText } from './pack.js';

function readAll(list) {
  const { cells, data } = packCells(list);
  const b = new Batch(new Uint8Array(0), cells, data);
  return list.map((_, i) => b.read(i));
}

test('every cell type decodes', () => {
  const json = '{"b":1,"a":[true,null],"n":12345678901234567890,"f":1.0}';
  const got = readAll([
    ['null'],
    ['int', -1],
    ['int', 2n ** 53n - 1n],
    ['int', -(2n ** 53n) + 1n],
    ['int', 2n ** 53n],
    ['int', -(2n ** 53n)],
    ['int', -(2n ** 63n)],
    ['uint', 2n ** 53n - 1n],
    ['uint', 2n ** 64n - 1n],
    ['float', 1.5],
    ['float', 0.1],
    ['double', -0.25],
    ['decimal', '19.990'],
    ['text', 'héllo'],
    ['bytes', [0, 255]],
    ['date', { year: 0, month: 0, day: 0 }],
    ['datetime', { year: 9999, month: 12, day: 31, hour: 23, minute: 59, second: 58, micros: 999999, fsp: 6 }],
    ['timestamp', { secs: -1, micros: 5, fsp: 1 }],
    ['time', { negative: true, hours: 838, minutes: 59, seconds: 59, micros: 1, fsp: 6 }],
    ['json', json],
  ]);
  let i = 0;
  assert.equal(got[i++], null);
  assert.equal(got[i++], -1);
  assert.equal(got[i++], 2 ** 53 - 1);
  assert.equal(got[i++], -(2 ** 53) + 1);
  // Past 2^53 an integer is a bigint, so that no digit is lost.
  assert.equal(got[i++], 2n ** 53n);
  assert.equal(got[i++], -(2n ** 53n));
  assert.equal(got[i++], -(2n ** 63n));
  assert.equal(got[i++], 2 ** 53 - 1);
  assert.equal(got[i++], 2n ** 64n - 1n);
  assert.ok(got[i] instanceof Float32);
  assert.equal(got[i++].value, 1.5);
  assert.equal(got[i].value, Math.fround(0.1));
  assert.equal(String(got[i++]), '0.1');
  assert.equal(got[i++], -0.25);
  assert.ok(got[i] instanceof Decimal);
  assert.equal(got[i].text, '19.990');
  assert.equal(Number(got[i++]), 19.99);
  assert.equal(got[i++], 'héllo');
  assert.deepEqual(got[i++], new Uint8Array([0, 255]));
  // A zero date keeps its fields; it has no JavaScript Date.
  assert.ok(got[i] instanceof Date_);
  assert.deepEqual({ ...got[i] }, { year: 0, month: 0, day: 0 });
  assert.equal(String(got[i]), '0000-00-00');
  assert.equal(got[i++].toDate(), null);
  assert.ok(got[i] instanceof DateTime);
  assert.equal(String(got[i]), '9999-12-31T23:59:58.999999');
  assert.equal(got[i++].toDate().toISOString(), '9999-12-31T23:59:58.999Z');
  assert.ok(got[i] instanceof Timestamp);
  assert.equal(String(got[i]), '1969-12-31T23:59:59.0Z');
  assert.equal(got[i++].toDate().getTime(), -1000);
  // A negative TIME past 24 hours.
  assert.ok(got[i] instanceof Time);
  assert.equal(String(got[i]), '-838:59:59.000001');
  assert.equal(got[i++].toMicros(), -((838 * 3600 + 59 * 60 + 59) * 1e6 + 1));
  // JSON text is kept verbatim (its big integer too); `.value` parses it.
  assert.ok(got[i] instanceof Json);
  assert.equal(got[i].text, json);
  assert.deepEqual(got[i].value.a, [true, null]);
});

test('ASCII and non-ASCII batches read the same text', () => {
  assert.deepEqual(readAll([['text', 'abc'], ['text', ''], ['decimal', '-1.50']]).map(String), ['abc', '', '-1.50']);
  assert.deepEqual(readAll([['text', 'abc'], ['bytes', [0xff]], ['text', 'é😀']]).slice(0, 3).map((v) => (typeof v === 'string' ? v : [...v])), ['abc', [0xff], 'é😀']);
});

test('bad cells are errors, not crashes', () => {
  const { cells, data } = packCells([['text', 'abc']]);
  const bad = cells.slice();
  new DataView(bad.buffer).setUint32(12, 200, true);
  assert.throws(() => new Batch(new Uint8Array(0), bad, data).read(0), /a span 0\+200 beyond its 3 bytes/);
  bad[0] = 99;
  assert.throws(() => new Batch(new Uint8Array(0), bad, data).read(0), /unknown cell tag 99/);
  const { cells: c2, data: d2 } = packCells([['bytes', [0xff, 0xfe]]]);
  c2[0] = 6; // text
  assert.throws(() => new Batch(new Uint8Array(0), c2, d2).read(0), /text that is not UTF-8/);
});

class Probe {
  constructor(config) {
    this.mode = config.get('mode');
  }

  interest() {
    return Interest.columns(['id', 'email']).withTables(['shop.*']);
  }

  process(event) {
    const id = event.get('id');
    if (id === 1) {
      event.set('email', 'x@y');
      event.split();
      event.rename('email', 'mail');
      event.add('source', { db: 'one' });
      event.setKey('k');
      event.addHeader('h', new Uint8Array([1]));
    } else if (id === 3) {
      event.dropEvent();
    } else if (id === 4) {
      event.split();
    } else if (id === 5) {
      if (this.mode === 'throw') throw new Error('boom');
      if (this.mode === 'sluice') throw new SluiceError('plain text');
      if (this.mode === 'string') throw 'a string'; // eslint-disable-line no-throw-literal
    }
  }
}

const probe = exportTransform(Probe);

function batch(ids) {
  const { cells, data } = packCells(ids.flatMap((id) => [['int', id], ['text', `${id}@x`]]));
  const events = packViews(ids.map((id, i) => ({
    kind: 'insert', table: 7, pos: 4, row: i, after: [2 * i, 2],
  })));
  return [[tableInfo(7, 'shop', 'orders', ['id', 'email', 'name'], [0, 1])], events, cells, data];
}

test('init answers the interest; transform the edits, as abi.rs does', () => {
  // (The answer's records are reused by the next call: read them before it.)
  assert.deepEqual(probe.init([['mode', 'none']]), { tables: ['shop.*'], columns: ['id', 'email'] });
  const edits = probe.transform(...batch([1, 2, 3, 4]));
  assert.equal(edits.tag, undefined, JSON.stringify(edits));
  // Event 0: two outputs (split); event 1: none (unchanged); event 2: a drop; event 3: split
  // with no ops, two unchanged copies.
  assert.deepEqual(edits.outputs, [
    { event: 0, opsStart: 0, opsLen: 1 },
    { event: 0, opsStart: 1, opsLen: 4 },
    { event: 2, opsStart: 5, opsLen: 1 },
    { event: 3, opsStart: 6, opsLen: 0 },
    { event: 3, opsStart: 6, opsLen: 0 },
  ]);
  const tags = edits.ops.map((o) => o.tag);
  assert.deepEqual(tags, ['set-after', 'rename-column', 'add-column', 'set-key', 'add-header', 'drop']);
  const [setCol, setCell] = edits.ops[0].val;
  assert.equal(setCol, 1);
  assert.equal(edits.cells[setCell].tag, 'text');
  assert.equal(spanText(edits, edits.cells[setCell].val), 'x@y');
  assert.equal(spanText(edits, edits.ops[1].val[1]), 'mail');
  const [name, cell] = edits.ops[2].val;
  assert.equal(spanText(edits, name), 'source');
  assert.equal(edits.cells[cell].tag, 'json');
  assert.equal(spanText(edits, edits.cells[cell].val), '{"db":"one"}');
  assert.equal(spanText(edits, edits.ops[3].val), 'k');
  assert.equal(edits.ops[4].val[1].len, 1);
  // Tables persist across calls: a batch without table-infos reuses them.
  // (A call detaches the buffers it was given, as componentize-js hands over copies: each call
  // here takes new ones.)
  const again = () => batch([2]).slice(1);
  assert.deepEqual(probe.transform([], ...again()).outputs, []);
  // An unknown table, or a bad record, is an error.
  const [events, cells, data] = again();
  assert.match(probe.transform([], packViews([{ kind: 'insert', table: 9 }]), cells, data).val, /unknown table id 9/);
  assert.match(probe.transform([], events.subarray(1), ...again().slice(1)).val, /not whole packed records/);
  assert.match(probe.transform([], packViews([{ kind: 'insert', table: 7, after: [10, 2] }]), ...again().slice(1)).val, /cell range out of bounds/);
});

test('an exception is the error, with the event it failed on', () => {
  probe.init([['mode', 'throw']]);
  const r = probe.transform(...batch([2, 5]));
  assert.equal(r.tag, 'err');
  const [first, ...stack] = r.val.split('\n');
  assert.equal(first, 'Error: boom (in process() on the insert event of shop.orders at pos 4 row 1)');
  assert.ok(stack.some((l) => l.includes('packed.test.js')), r.val);

  probe.init([['mode', 'sluice']]);
  assert.deepEqual(probe.transform(...batch([5])), { tag: 'err', val: 'plain text' });
  probe.init([['mode', 'string']]);
  assert.deepEqual(probe.transform(...batch([5])), {
    tag: 'err', val: 'a string (in process() on the insert event of shop.orders at pos 4 row 0)',
  });
});

test('init errors: the constructor\'s exception, a missing process', () => {
  class Bad {
    constructor(config) {
      config.require('needed');
    }
  }
  assert.deepEqual(exportTransform(Bad).init([]), { tag: 'err', val: 'the transform needs the config key "needed"' });
  class Typo {
    constructor() {
      this.x = undefined.y;
    }
  }
  assert.match(exportTransform(Typo).init([]).val, /^TypeError: .* \(in the transform's constructor\)\n/);
  class NoProcess {}
  assert.equal(exportTransform(NoProcess).init([]).val, 'NoProcess has no process(event) method');
  // Every table and column when the class declares no interest.
  class All {
    process() {}
  }
  assert.deepEqual(exportTransform(All).init([]), { tables: [], columns: undefined });
});

test('dropped events share one drop op; positions past 2^53 are bigints', () => {
  class DropAll {
    process(event) {
      seen.push(event.position);
      event.dropEvent();
    }
  }
  const seen = [];
  const t = exportTransform(DropAll);
  t.init([]);
  const { cells, data } = packCells([['int', 1]]);
  const events = packViews([
    { kind: 'insert', table: 1, pos: 2n ** 60n, row: 7, after: [0, 1] },
    { kind: 'delete', table: 1, pos: 5, row: 8, before: [0, 1] },
  ]);
  const edits = t.transform([tableInfo(1, 's', 't', ['id'])], events, cells, data);
  assert.deepEqual(edits.ops.map((o) => o.tag), ['drop']);
  assert.deepEqual(edits.outputs, [{ event: 0, opsStart: 0, opsLen: 1 }, { event: 1, opsStart: 0, opsLen: 1 }]);
  assert.deepEqual(seen, [{ pos: 2n ** 60n, row: 7 }, { pos: 5, row: 8 }]);
});

test('a call frees the buffers it was given (where the engine can detach them)', { skip: typeof ArrayBuffer.prototype.transfer !== 'function' && 'no ArrayBuffer.prototype.transfer in this Node' }, () => {
  probe.init([['mode', 'none']]);
  const args = batch([1, 2]);
  probe.transform(...args);
  for (const b of args.slice(1)) assert.equal(b.buffer.detached, true);
});

test('the answer\'s texts and bytes land where their spans say', () => {
  class Writer {
    process(event) {
      const id = event.get('id');
      event.set('email', id === 1 ? 'é😀x' : 'plain');
      event.setKey(new Uint8Array([id, 255]));
      event.setTopic('\uD800lone');
      event.add('j', { 'ü': [1] });
      event.setPayload('tail');
    }
  }
  const t = exportTransform(Writer);
  t.init([]);
  const edits = t.transform(...batch([1, 2]));
  const texts = edits.ops.map((o) => {
    const sp = o.tag === 'set-after' ? edits.cells[o.val[1]].val : o.tag === 'add-column' ? o.val[0] : o.val;
    const bytes = edits.data.subarray(sp.start, sp.start + sp.len);
    return o.tag === 'set-key' ? [...bytes] : new TextDecoder().decode(bytes);
  });
  assert.deepEqual(texts, [
    'é😀x', [1, 255], '\uFFFDlone', 'j', 'tail',
    'plain', [2, 255], '\uFFFDlone', 'j', 'tail',
  ]);
  const json = edits.ops.filter((o) => o.tag === 'add-column').map((o) => spanText(edits, edits.cells[o.val[1]].val));
  assert.deepEqual(json, ['{"ü":[1]}', '{"ü":[1]}']);
});
