// Values and the Rust rules the SDK reproduces. The expected texts were checked against the
// host (`sluice transform test` re-writes JSON input with serde_json).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Config, Interest, Float32, Double, Decimal, Json, Date_, DateTime, Timestamp, Time,
  contractJson, compareText, parseRustF64,
} from '../index.js';
import {
  f64Text, f32Digits, canonicalJson, rustTrim, toCell, base64, temporalText,
} from '../lib/values.js';

test('doubles print as serde_json prints them', () => {
  const cases = [
    [1, '1.0'], [-0, '-0.0'], [0.1, '0.1'], [1e15, '1000000000000000.0'], [1e16, '1e+16'],
    [1e-5, '0.00001'], [1e-6, '1e-6'], [1.5e-7, '1.5e-7'], [123456789012345680000, '1.2345678901234568e+20'],
    [5e-324, '5e-324'], [43210.1, '43210.1'], [-5942736479622170, '-5942736479622170.0'],
    [6.62607015e-34, '6.62607015e-34'], [1.7976931348623157e308, '1.7976931348623157e+308'],
  ];
  for (const [x, want] of cases) assert.equal(f64Text(x), want, String(x));
});

test('a FLOAT has its shortest f32 digits', () => {
  assert.equal(Number(f32Digits(Math.fround(0.1))), 0.1);
  assert.equal(Number(f32Digits(Math.fround(1.342178e8))), 134217800);
  assert.equal(Number(f32Digits(Math.fround(1e-45))), 1e-45);
  assert.equal(Number(f32Digits(Math.fround(16777216))), 16777216);
  // Shortest: no fewer digits read back as the same f32.
  for (let i = 1; i < 2000; i++) {
    const x = Math.fround(Math.sin(i) * 10 ** ((i % 40) - 20));
    const d = f32Digits(x);
    assert.equal(Math.fround(Number(d)), x);
    const digits = d.split('e')[0].replace(/[-.]/g, '').length;
    if (digits > 1) assert.notEqual(Math.fround(Number(x.toPrecision(digits - 1))), x, `${x} ${d}`);
  }
  assert.equal(String(new Float32(2.71)), '2.71');
});

test('contract JSON text of values', () => {
  assert.equal(contractJson(5), '5');
  assert.equal(contractJson(new Double(5)), '5.0');
  assert.equal(contractJson(2n ** 64n - 1n), '18446744073709551615');
  assert.equal(contractJson(new Float32(2.71)), '2.71');
  assert.equal(contractJson(NaN), 'null');
  assert.equal(contractJson(new Decimal('19.990')), '"19.990"');
  assert.equal(contractJson('é"x'), '"é\\"x"');
  assert.equal(contractJson(new Uint8Array([0xde, 0xad, 0xbe, 0xef, 0])), '"3q2+7wA="');
  assert.equal(contractJson(new Timestamp(1706702400, 250000, 3)), '"2024-01-31T12:00:00.250Z"');
  assert.equal(contractJson(new DateTime(2024, 1, 31, 12, 0, 0, 250000, 3)), '"2024-01-31T12:00:00.250"');
  assert.equal(contractJson(new Time(true, 838, 59, 59)), '"-838:59:59"');
  assert.equal(contractJson(new Time(false, 1, 2, 3, 5, 6)), '"01:02:03.000005"');
  assert.equal(contractJson(new Date_(1, 2, 3)), '"0001-02-03"');
  assert.equal(contractJson({ b: 1, a: [1.5, null] }), '{"b":1,"a":[1.5,null]}');
  // Far TIMESTAMPs, as format.rs prints them.
  assert.equal(temporalText('timestamp', { secs: -62167219201, micros: 0, fsp: 0 }), '-001-12-31T23:59:59Z');
  assert.equal(temporalText('timestamp', { secs: 2n ** 62n, micros: 2000000, fsp: 6 }), '146138514283-06-19T07:45:04.200000Z');
  assert.equal(temporalText('datetime', {
    year: 2024, month: 1, day: 31, hour: 23, minute: 5, second: 9, micros: 123456, fsp: 9,
  }), '2024-01-31T23:05:09.123456');
  assert.equal(base64(new Uint8Array([1])), 'AQ==');
  assert.equal(base64(new Uint8Array([1, 2])), 'AQI=');
});

test('JSON documents as serde_json re-writes them', () => {
  assert.equal(canonicalJson('{"b":1,"a":2,"b":3}'), '{"b":3,"a":2}');
  assert.equal(canonicalJson('{"2":1,"1":2}'), '{"2":1,"1":2}');
  assert.equal(canonicalJson('[1.0,2e3,-0,0.0,1E2,-1.5e-7]'), '[1.0,2000.0,-0.0,0.0,100.0,-1.5e-7]');
  assert.equal(canonicalJson('[18446744073709551615,18446744073709551616,-9223372036854775809]'),
    '[18446744073709551615,1.8446744073709552e+19,-9.223372036854776e+18]');
  assert.equal(canonicalJson('"\\u00e9\\/\\u007f\\u2028"'), '"é/\u007f\u2028"');
  assert.equal(canonicalJson(' [ 1 , { } ] '), '[1,{}]');
  assert.throws(() => canonicalJson('1e400'), /out of range/);
  assert.throws(() => canonicalJson('[1,]'), SyntaxError);
  assert.throws(() => canonicalJson('"\\ud800"'), /surrogate/);
  assert.throws(() => canonicalJson('01'), /trailing/);
});

test('Rust number parsing, text order and trimming', () => {
  for (const [t, v] of [['1', 1], ['-1.5e3', -1500], ['.5', 0.5], ['5.', 5], ['+3', 3], ['inf', Infinity],
    ['-Infinity', -Infinity], ['1e400', Infinity], ['0001', 1]]) {
    assert.equal(parseRustF64(t), v, t);
  }
  assert.ok(Number.isNaN(parseRustF64('NaN')));
  for (const t of ['', ' 1', '1 ', '0x10', '1_000', '.', 'e5', '1e', 'Infinityx', '١']) assert.equal(parseRustF64(t), null, t);
  assert.equal(compareText('a', 'b'), -1);
  assert.equal(compareText('b', 'a'), 1);
  assert.equal(compareText('ab', 'ab'), 0);
  assert.equal(compareText('a', 'ab'), -1);
  // U+FF5E sorts before U+1F600 in UTF-8 (Rust), after it in UTF-16 (JavaScript's <).
  assert.equal(compareText('～', '😀'), -1);
  assert.equal(compareText('x😀', 'x～'), 1);
  assert.equal(rustTrim('\u00a0 a b\t\n'), 'a b');
  assert.equal(rustTrim('\ufeffa\u0085'), '\ufeffa');
});

test('values become the cells Rust would publish', () => {
  assert.deepEqual(toCell(1), { tag: 'int', val: 1 });
  assert.deepEqual(toCell(-(2 ** 63)), { tag: 'int', val: -(2 ** 63) });
  assert.deepEqual(toCell(2 ** 63), { tag: 'uint', val: 2 ** 63 });
  assert.deepEqual(toCell(2 ** 64), { tag: 'double', val: 2 ** 64 });
  assert.deepEqual(toCell(1.5), { tag: 'double', val: 1.5 });
  assert.deepEqual(toCell(-0), { tag: 'double', val: -0 });
  assert.deepEqual(toCell(2n ** 63n), { tag: 'uint', val: 2n ** 63n });
  assert.deepEqual(toCell(false), { tag: 'int', val: 0 });
  assert.deepEqual(toCell([1, { a: 'x' }]), { tag: 'json', val: '[1,{"a":"x"}]' });
  assert.deepEqual(toCell(Json.fromText('{"a" : 1}')), { tag: 'json', val: '{"a" : 1}' });
  assert.deepEqual(toCell(new Decimal('1.50')), { tag: 'decimal', val: '1.50' });
  assert.throws(() => toCell(-(2n ** 63n) - 1n), RangeError);
  assert.throws(() => toCell(new Map()), /a Map is not a column value/);
  assert.throws(() => new Date_(2024, 13.5, 1), RangeError);
  assert.throws(() => Json.fromText('{'), SyntaxError);
  assert.equal(Number(new Decimal('19.990')) + 1, 20.99);
  assert.equal(`${new Decimal('19.990')}`, '19.990');
  assert.deepEqual(new Json({ a: [1] }).value, { a: [1] });
  assert.equal(Timestamp.fromDate(new Date(1500)).toString(), '1970-01-01T00:00:01.500Z');
  assert.equal(DateTime.fromDate(new Date(Date.UTC(5, 0, 2, 3, 4, 5, 6))).toString().slice(0, 4), '1905');
  assert.equal(Date_.fromDate(new Date('0099-03-04T00:00:00Z')).toDate().toISOString(), '0099-03-04T00:00:00.000Z');
  assert.equal(new Date_(2023, 2, 30).toDate(), null);
});

test('Config and Interest', () => {
  const c = new Config([['a', '1'], ['l', ' x, ,y ,'], ['a', '2']]);
  assert.equal(c.get('a'), '2');
  assert.equal(c.get('b'), undefined);
  assert.deepEqual(c.list('l'), ['x', 'y']);
  assert.deepEqual(c.list('b'), []);
  assert.throws(() => c.require('b'), /the transform needs the config key "b"/);
  const i = Interest.columns(['name', 'id']).withTables(['shop.*', 'crm.users', 'audit']);
  assert.ok(i.matchesTable('shop', 'orders'));
  assert.ok(i.matchesTable('crm', 'users'));
  assert.ok(!i.matchesTable('crm', 'leads'));
  assert.ok(i.matchesTable('any', 'audit'));
  assert.deepEqual(i.projection(['id', 'email', 'name']), [0, 2]);
  assert.deepEqual(Interest.all().projection(['id', 'email']), [0, 1]);
  assert.deepEqual(Interest.noColumns().projection(['id']), []);
  assert.throws(() => Interest.columns('id'), TypeError);
});
