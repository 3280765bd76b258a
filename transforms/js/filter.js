// `filter`: drops events by table, or keeps only the rows that match a column predicate. A port
// of transforms/filter (Rust): the same config, errors and decisions.
//
// Config:
// - `drop_tables`: comma-separated `schema.table` (or `schema.*`) whose events are dropped;
// - `column`, `op`, `value`: keep an event only when `column op value` holds. `op` is one of
//   `==`, `!=`, `<`, `<=`, `>`, `>=`, `contains`. Numbers compare as numbers, the rest as text.
//   A row where the column is NULL or missing does not match.
//
// A table-level `truncate` event (no row) is dropped by `drop_tables` when its table is listed,
// and otherwise passes: a row predicate cannot judge it, and dropping it would leave the
// consumer with the table's old rows.

import {
  exportTransform, Interest, Kind, SluiceError, Decimal, Json, Float32, Double,
  compareText, contractJson, parseRustF64, rustDebug,
} from 'sluice-transform';

const OPS = new Map([
  ['==', 'eq'], ['=', 'eq'], ['eq', 'eq'],
  ['!=', 'ne'], ['ne', 'ne'],
  ['<', 'lt'], ['lt', 'lt'],
  ['<=', 'le'], ['le', 'le'],
  ['>', 'gt'], ['gt', 'gt'],
  ['>=', 'ge'], ['ge', 'ge'],
  ['contains', 'contains'],
]);


export class Filter {
  constructor(config) {
    const dropTables = config.list('drop_tables');
    this.predicate = null;
    const column = config.get('column');
    if (column !== undefined) {
      const opText = config.require('op');
      const op = OPS.get(opText);
      if (op === undefined) {
        throw new SluiceError(`unknown op ${rustDebug(opText)}: use ==, !=, <, <=, >, >= or contains`);
      }
      this.predicate = { column, op, want: config.require('value') };
    }
    if (dropTables.length === 0 && this.predicate === null) {
      throw new SluiceError('set `drop_tables` and/or `column`, `op` and `value`');
    }
    this.dropTables = Interest.all().withTables(dropTables);
    // The predicate's value as a number, parsed once (as Rust parses an f64).
    this.wantNum = this.predicate === null ? null : parseRustF64(this.predicate.want);
  }

  // Only the predicate's column crosses into the sandbox (none when filtering by table).
  interest() {
    return this.predicate === null ? Interest.noColumns() : Interest.columns([this.predicate.column]);
  }

  process(event) {
    if (this.dropTables.tables.length > 0 && this.dropTables.matchesTable(event.schema, event.table)) {
      event.dropEvent();
      return;
    }
    if (event.kind === Kind.TRUNCATE) return;
    if (this.predicate !== null) {
      const { column, op, want } = this.predicate;
      const v = event.get(column);
      if (v === undefined || !matches(v, event, column, op, want, this.wantNum)) {
        event.dropEvent();
      }
    }
  }
}

/** A value as a number, as Rust's `Value::as_f64` reads it (null: not a number). */
function asF64(v) {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (v instanceof Float32) return v.value;
  if (v instanceof Decimal) return parseRustF64(v.text);
  return null;
}

function matches(v, event, column, op, want, wantNum) {
  if (v === null) return false;
  if (op === 'contains') {
    if (v instanceof Json) return v.text.includes(want);
    if (typeof v === 'string') return v.includes(want);
    if (v instanceof Decimal) return v.text.includes(want);
    return false;
  }
  let ord;
  const a = wantNum === null ? null : asF64(v);
  if (a !== null) {
    if (Number.isNaN(a) || Number.isNaN(wantNum)) return false;
    ord = a < wantNum ? -1 : a > wantNum ? 1 : 0;
  } else {
    let text;
    if (typeof v === 'string') text = v;
    else if (v instanceof Decimal || v instanceof Json) text = v.text;
    else {
      // The value's contract JSON text, its quotes trimmed (a DOUBLE keeps its `.0`).
      text = contractJson(event.cellType(column) === 'double' ? new Double(v) : v).replace(/^"+|"+$/g, '');
    }
    // Equality needs no order; the order is by code point (UTF-8 bytes), as in Rust.
    if (op === 'eq') return text === want;
    if (op === 'ne') return text !== want;
    ord = compareText(text, want);
  }
  switch (op) {
    case 'eq':
      return ord === 0;
    case 'ne':
      return ord !== 0;
    case 'lt':
      return ord < 0;
    case 'le':
      return ord <= 0;
    case 'gt':
      return ord > 0;
    default:
      return ord >= 0;
  }
}

export const { init, transform } = exportTransform(Filter);
