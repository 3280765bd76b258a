import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Kind, Json } from 'sluice-transform';
import { Harness, TestEvent } from 'sluice-transform/testing';
import { createHash } from 'node:crypto';
import { Mask, hashHex } from './mask.js';

test('hashes emails in both images', () => {
  const h = new Harness(Mask, { columns: 'email' });
  const out = h.run([TestEvent.update('shop', 'users', { id: 1, email: 'a@x.io' }, { id: 1, email: 'b@x.io' })]);
  assert.equal(out[0].get('email'), hashHex('', 'b@x.io'));
  assert.equal(out[0].before[1], hashHex('', 'a@x.io'));
  assert.equal(out[0].get('id'), 1);
  // A known SHA-256 vector.
  assert.equal(hashHex('', 'abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
});

test('truncate passes unchanged', () => {
  const h = new Harness(Mask, { columns: 'email' });
  const out = h.run([TestEvent.truncate('shop', 'users')]);
  assert.equal(out.length, 1);
  assert.equal(out[0].kind, Kind.TRUNCATE);
  assert.ok(out[0].columns.length === 0 && out[0].after.length === 0);
  assert.ok(out[0].payload === null && out[0].topic === null);
});

test('redacts and keeps nulls', () => {
  const h = new Harness(Mask, { columns: 'email,phone', mode: 'redact' });
  const out = h.run([TestEvent.insert('s', 't', { email: 'a@x', phone: null })]);
  assert.equal(out[0].get('email'), '<redacted>');
  assert.equal(out[0].get('phone'), null);
});

// Beyond the Rust tests.

test('salt, bytes, JSON text and other types', () => {
  const h = new Harness(Mask, { columns: 'a,b,c,d', salt: 's' });
  const out = h.run([TestEvent.insert('s', 't', {
    a: 'x', b: new Uint8Array([1, 2]), c: { z: 1, y: [1.5] }, d: 5,
  })]);
  assert.equal(out[0].get('a'), hashHex('s', 'x'));
  assert.equal(out[0].get('b'), hashHex('s', new Uint8Array([1, 2])));
  // The JSON as the host writes it: compact, keys in their order.
  assert.equal(out[0].get('c'), hashHex('s', '{"z":1,"y":[1.5]}'));
  assert.ok(new Json({ z: 1 }).text === '{"z":1}');
  assert.equal(out[0].get('d'), '<redacted>');
});

test('a delete masks its row before', () => {
  const h = new Harness(Mask, { columns: 'email' });
  const [o] = h.run([TestEvent.delete('s', 't', { id: 1, email: 'a' })]);
  assert.equal(o.get('email'), hashHex('', 'a'));
  assert.deepEqual(o.valueJson().oldkeys.keyvalues, [1, hashHex('', 'a')]);
});

test('bad config is an error', () => {
  assert.throws(() => new Harness(Mask, {}), /set `columns` to the comma-separated columns to mask/);
  assert.throws(() => new Harness(Mask, { columns: 'a', mode: 'x' }), /unknown mode "x": use hash or redact/);
});

test('hashes the UTF-8 of any text, and bytes', () => {
  for (const s of ['', 'a', 'é', '€', '😀', 'a\uD800b', 'x'.repeat(3000) + 'ü']) {
    assert.equal(hashHex('sé', s), createHash('sha256').update(Buffer.from('sé' + s, 'utf8')).digest('hex'), s.slice(0, 5));
  }
  const big = new Uint8Array(5000).map((_, i) => i & 255);
  assert.equal(hashHex('😀', big), createHash('sha256').update(Buffer.concat([Buffer.from('😀'), big])).digest('hex'));
});
