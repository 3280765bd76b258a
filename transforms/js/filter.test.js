import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Decimal, Kind } from 'sluice-transform';
import { Harness, TestEvent } from 'sluice-transform/testing';
import { Filter } from './filter.js';

function order(id, status, total) {
  return TestEvent.insert('shop', 'orders', { id, status, total: new Decimal(total) });
}

test('keeps rows matching the predicate', () => {
  const h = new Harness(Filter, { column: 'status', op: '==', value: 'paid' });
  const out = h.run([order(1, 'paid', '1.00'), order(2, 'new', '2.00'), order(3, 'paid', '3.00')]);
  assert.deepEqual(out.map((o) => o.get('id')), [1, 3]);
});

test('numeric comparison on decimals', () => {
  const h = new Harness(Filter, { column: 'total', op: '>=', value: '2' });
  const out = h.run([order(1, 'x', '1.99'), order(2, 'x', '2.00'), order(3, 'x', '10.5')]);
  assert.equal(out.length, 2);
  assert.equal(out[0].get('id'), 2);
});

test('drops tables', () => {
  const h = new Harness(Filter, { drop_tables: 'shop.audit' });
  const audit = TestEvent.insert('shop', 'audit', { id: 9 });
  const out = h.run([order(1, 'paid', '1'), audit]);
  assert.equal(out.length, 1);
  assert.equal(out[0].table, 'orders');
});

test('truncate passes the predicate and is dropped only by table', () => {
  const h = new Harness(Filter, {
    column: 'status', op: '==', value: 'paid', drop_tables: 'shop.audit',
  });
  const out = h.run([
    order(1, 'new', '1'),
    TestEvent.truncate('shop', 'orders'),
    TestEvent.truncate('shop', 'audit'),
  ]);
  assert.equal(out.length, 1);
  assert.deepEqual([out[0].kind, out[0].table], [Kind.TRUNCATE, 'orders']);
  assert.equal(
    JSON.stringify(out[0].valueJson()),
    '{"kind":"truncate","schema":"shop","table":"orders","columnnames":[],"columnvalues":[],"oldkeys":{}}',
  );
});

test('bad config is an error', () => {
  assert.throws(() => new Harness(Filter, {}), /set `drop_tables` and\/or `column`, `op` and `value`/);
  assert.throws(() => new Harness(Filter, { column: 'a', op: '~', value: '1' }), /unknown op "~"/);
  assert.throws(() => new Harness(Filter, { column: 'a', value: '1' }), /the transform needs the config key "op"/);
});

// Beyond the Rust tests: the comparison rules the port must keep.

test('text compares by code point, as Rust does', () => {
  // UTF-16 puts U+FF5E (a BMP character) after U+1F600; UTF-8 and Rust put it before.
  const h = new Harness(Filter, { column: 'status', op: '<', value: '😀' });
  const out = h.run([order(1, '～', '1'), order(2, '😁', '1')]);
  assert.deepEqual(out.map((o) => o.get('id')), [1]);
});

test('numbers as numbers only when the wanted value parses as Rust parses an f64', () => {
  const run = (value, status) => new Harness(Filter, { column: 'status', op: '==', value })
    .run([TestEvent.insert('s', 't', { id: 1, status })]).length;
  assert.equal(run('1e3', 1000), 1);
  assert.equal(run('.5', 0.5), 1);
  assert.equal(run('inf', Infinity), 1);
  // " 5" and "0x5" are not numbers to Rust: text compares "5" with them.
  assert.equal(run(' 5', 5), 0);
  assert.equal(run('0x5', 5), 0);
  // NaN never matches, not even !=.
  assert.equal(new Harness(Filter, { column: 'status', op: '!=', value: 'NaN' })
    .run([TestEvent.insert('s', 't', { id: 1, status: 1 })]).length, 0);
});

test('contains looks in text, decimals and JSON text', () => {
  const h = new Harness(Filter, { column: 'status', op: 'contains', value: 'ai' });
  const out = h.run([
    TestEvent.insert('s', 't', { id: 1, status: 'paid' }),
    TestEvent.insert('s', 't', { id: 2, status: { k: 'paid' } }),
    TestEvent.insert('s', 't', { id: 3, status: 7 }),
    TestEvent.insert('s', 't', { id: 4, status: null }),
    TestEvent.insert('s', 't', { id: 5, other: 'paid' }),
  ]);
  assert.deepEqual(out.map((o) => o.get('id')), [1, 2]);
});
