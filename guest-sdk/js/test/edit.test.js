// Edits as the host applies them (contract/src/edit.rs), through the native harness.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Interest, SluiceError, Kind, Double, Json, Float32 } from '../index.js';
import { Harness, TestEvent } from '../testing.js';
import { check, apply, op } from '../lib/edit.js';

/** A transform whose process is given by the test. */
function harness(process, interest = Interest.all()) {
  class T {
    interest() {
      return interest;
    }

    process(event) {
      process(event);
    }
  }
  return new Harness(T);
}

function row() {
  const ev = TestEvent.update('s', 't', { a: 0, id: 2, email: 'w@y' }, { a: 1, id: 2, email: 'x@y' });
  ev.primaryKey = [1];
  return ev;
}

test('set, rename and routing', () => {
  const [o] = harness((e) => {
    e.set('email', '*');
    e.setBefore('email', '-');
    e.rename('email', 'mail');
    e.setTopic('t2');
    e.setKey('k');
    e.addHeader('h', 'v');
  }).run([row()]);
  assert.deepEqual(o.columns, ['a', 'id', 'mail']);
  assert.deepEqual(o.after, [1, 2, '*']);
  assert.deepEqual(o.before, [0, 2, '-']);
  assert.deepEqual(o.primaryKey, [1]);
  assert.equal(o.topic, 't2');
  assert.deepEqual(o.key, new TextEncoder().encode('k'));
  assert.deepEqual(o.envelopeJson().headers, [['h', 'v']]);
  assert.deepEqual(o.valueJson().oldkeys, { keynames: ['a', 'id', 'mail'], keyvalues: [0, 2, '-'] });
});

test('a set value reads back, typed', () => {
  harness((e) => {
    e.set('a', 5.5);
    assert.equal(e.get('a'), 5.5);
    assert.equal(e.cellType('a'), 'double');
    e.set('a', new Double(3));
    assert.equal(e.cellType('a'), 'double');
    e.set('a', { x: 1 });
    assert.ok(e.get('a') instanceof Json);
    assert.equal(e.cellType('id'), 'int');
    assert.equal(e.cellType('nope'), undefined);
    assert.throws(() => e.set('zz', 1), (err) => err instanceof SluiceError && err.message === 's.t has no column "zz"');
    assert.throws(() => e.set('a', undefined), TypeError);
    assert.throws(() => e.set('a', new Date()), /Timestamp.fromDate/);
    assert.throws(() => e.set('a', 2n ** 64n), RangeError);
  }).run([row()]);
});

test('values publish with their types', () => {
  const [o] = harness((e) => {
    e.set('a', 2 ** 63);
    e.set('id', 1.0);
    e.set('email', new Double(1));
  }).run([row()]);
  assert.deepEqual(o.after, [2n ** 63n, 1, 1]);
  const [p] = harness((e) => {
    e.set('a', new Float32(2.71));
    e.set('id', true);
    e.set('email', new Uint8Array([0xde, 0xad, 0xbe, 0xef, 0]));
  }).run([row()]);
  assert.deepEqual(p.valueJson().columnvalues, [2.71, 1, '3q2+7wA=']);
});

test('split: later calls apply to another output, a copy of the input', () => {
  const out = harness((e) => {
    e.setTopic('one');
    e.split();
    e.set('email', 'second');
    e.split();
    e.dropEvent();
  }).run([row()]);
  assert.equal(out.length, 2);
  assert.equal(out[0].topic, 'one');
  assert.equal(out[0].get('email'), 'x@y');
  assert.equal(out[1].topic, null);
  assert.equal(out[1].get('email'), 'second');
});

test('removing a column re-numbers the key; removing a key column leaves it', () => {
  const [o] = harness((e) => e.remove('a')).run([row()]);
  assert.deepEqual(o.columns, ['id', 'email']);
  assert.deepEqual(o.primaryKey, [0]);
  assert.deepEqual(o.after, [2, 'x@y']);
  assert.deepEqual(o.before, [2, 'w@y']);
  const [p] = harness((e) => e.remove('id')).run([row()]);
  assert.deepEqual(p.primaryKey, []);
});

test('added columns follow the remaining ones, in each image the kind has', () => {
  const [o] = harness((e) => {
    e.add('source', 'db1');
    e.remove('a');
    e.add('n', 7);
  }).run([row()]);
  assert.deepEqual(o.columns, ['id', 'email', 'source', 'n']);
  assert.deepEqual(o.after, [2, 'x@y', 'db1', 7]);
  assert.deepEqual(o.before, [2, 'w@y', 'db1', 7]);
  assert.deepEqual(o.primaryKey, [0]);
  const add = (e) => e.add('s', null);
  const [ins] = harness(add).run([TestEvent.insert('s', 't', { a: 1 })]);
  assert.deepEqual([ins.after, ins.before], [[1, null], []]);
  const [del] = harness(add).run([TestEvent.delete('s', 't', { a: 1 })]);
  assert.deepEqual([del.after, del.before], [[], [1, null]]);
  assert.deepEqual(del.valueJson(), {
    kind: 'delete', schema: 's', table: 't', columnnames: [], columnvalues: [],
    oldkeys: { keynames: ['a', 's'], keyvalues: [1, null] },
  });
});

test('duplicate names and columns added to a truncate are refused', () => {
  harness((e) => {
    assert.throws(() => e.add('id', 1), (err) => err instanceof SluiceError
      && err.message === 's.t: the edited event would have two columns named "id": rename or remove one of them (to change a column the table has, set it instead of adding it)');
    // Renaming the old column away frees its name; removing it does too.
    e.rename('id', 'old_id');
    e.add('id', 1);
    e.remove('a');
    e.add('a', 2);
  }).run([row()]);
  harness((e) => {
    assert.throws(() => e.add('s', 1), /s.t: added the column "s" to a truncate event, which has no row/);
  }).run([TestEvent.truncate('s', 't')]);
  // A rename onto an existing name is refused when the host applies the edit.
  assert.throws(() => harness((e) => e.rename('a', 'id')).run([row()]), /two columns named "id"/);
});

test('projection and table interest, as the host selects', () => {
  const seen = [];
  const out = harness((e) => {
    seen.push([e.table, e.get('a'), e.get('email'), e.getBefore('email'), e.position.row]);
    e.set('email', 'm');
  }, Interest.columns(['email']).withTables(['s.t'])).run([row(), TestEvent.insert('s', 'other', { email: 'q' })]);
  // Only the interest's column crosses; the other table passes without a call.
  assert.deepEqual(seen, [['t', undefined, 'x@y', 'w@y', 0]]);
  assert.equal(out[0].get('email'), 'm');
  assert.equal(out[1].get('email'), 'q');
  assert.equal(out[0].kind, Kind.UPDATE);
});

test('fromJson reads the contract event and typed values', () => {
  const ev = TestEvent.fromJson('{"kind":"update","schema":"s","table":"t","columnnames":["a","b","c","d","e"],'
    + '"columnvalues":[18446744073709551615,-0,1.0,{"z":1,"y":2,"z":3},true],'
    + '"oldkeys":{"keynames":["a","b","c","d","e"],"keyvalues":[1,2,3,null,"x"]}}');
  assert.deepEqual(ev.columns, ['a', 'b', 'c', 'd', 'e']);
  assert.equal(ev.after[0], 2n ** 64n - 1n);
  assert.ok(Object.is(ev.after[1], -0));
  assert.equal(ev.after[3].text, '{"z":3,"y":2}');
  assert.equal(ev.after[4], 1);
  const [o] = harness(() => {}).run([ev]);
  assert.deepEqual(o.valueJson().columnvalues, [2n ** 64n - 1n, -0, 1, { z: 3, y: 2 }, 1]);
  assert.throws(() => TestEvent.fromJson('{'), /^SluiceError: not JSON/);
  assert.throws(() => TestEvent.fromJson('{"kind":"upsert","schema":"s","table":"t"}'), /unknown kind "upsert"/);
  assert.throws(() => TestEvent.fromJson('{"kind":"insert","schema":"s","table":"t","columnnames":["a","b"],"columnvalues":[1,2,3],"oldkeys":{}}'),
    /columnvalues has 3 values for 2 columns/);
  assert.throws(() => TestEvent.fromJson('{"kind":"truncate","schema":"s","table":"t","columnnames":["x"],"columnvalues":[1],"oldkeys":{}}'),
    /truncate/);
  assert.equal(TestEvent.fromJson('{"kind":"truncate","schema":"s","table":"t","columnnames":[],"columnvalues":[],"oldkeys":{}}').kind, 'truncate');
});

test('check and apply, directly (edit.rs tests)', () => {
  const cols = ['a', 'id', 'email'];
  assert.equal(check('insert', cols, [op(1, 3, { tag: 'null' })]), 'edited column 3 of a table that has 3 columns');
  assert.equal(check('insert', cols, [op(4, 0), op(5, 'a', { tag: 'null' })]), null);
  // Images longer than the columns do not break removal or addition.
  const r = {
    kind: 'insert', columns: cols, primaryKey: [1], after: [1, 2, 3, 99].map((v) => ({ tag: 'int', val: v })),
    before: [], topic: null, key: null, headers: [], payload: null,
  };
  assert.ok(apply(r, [op(4, 0), op(5, 's', { tag: 'null' })]));
  assert.deepEqual(r.columns, ['id', 'email', 's']);
  assert.equal(r.after.length, 4);
  // A drop leaves the event alone.
  const s = { ...r, after: r.after.slice() };
  assert.equal(apply(s, [op(1, 0, { tag: 'null' }), op(0)]), false);
  assert.deepEqual(s.after, r.after);
});

test('ops after a drop, drops after ops, and a refused add keep the others', () => {
  const [o] = harness((e) => {
    e.dropEvent();
    e.split();
    e.set('email', 'a');
    e.dropEvent();
    e.split();
    e.dropEvent();
    e.setTopic('x');
    e.split();
    e.setTopic('kept');
    assert.throws(() => e.add('id', 1), SluiceError);
    e.add('extra', 1);
  }).run([row()]);
  assert.equal(o.topic, 'kept');
  assert.deepEqual(o.columns, ['a', 'id', 'email', 'extra']);
  assert.equal(harness((e) => { e.dropEvent(); e.dropEvent(); }).run([row()]).length, 0);
});
