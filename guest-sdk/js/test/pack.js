// A test encoder of the packed request, written from contract/src/packed.rs (`View::write`,
// `write_cell`) as the host writes it.

const TAG = {
  null: 0, int: 1, uint: 2, float: 3, double: 4, decimal: 5, text: 6, bytes: 7, date: 8,
  datetime: 9, timestamp: 10, time: 11, json: 12,
};
const KIND = { snapshot_insert: 0, insert: 1, update: 2, delete: 3, truncate: 4 };

/** Packs [tag, value] cells: {cells, data}. */
export function packCells(list) {
  const cells = new Uint8Array(list.length * 16);
  const dv = new DataView(cells.buffer);
  const data = [];
  list.forEach(([tag, v], i) => {
    const at = i * 16;
    cells[at] = TAG[tag];
    const span = (bytes) => {
      dv.setUint32(at + 8, data.length, true);
      dv.setUint32(at + 12, bytes.length, true);
      data.push(...bytes);
    };
    switch (tag) {
      case 'null':
        break;
      case 'int':
        dv.setBigInt64(at + 8, BigInt(v), true);
        break;
      case 'uint':
        dv.setBigUint64(at + 8, BigInt(v), true);
        break;
      case 'float':
        dv.setFloat32(at + 8, v, true);
        break;
      case 'double':
        dv.setFloat64(at + 8, v, true);
        break;
      case 'decimal':
      case 'text':
      case 'json':
        span(new TextEncoder().encode(v));
        break;
      case 'bytes':
        span(v);
        break;
      case 'date':
        dv.setUint16(at + 2, v.year, true);
        cells[at + 4] = v.month;
        cells[at + 5] = v.day;
        break;
      case 'datetime':
        dv.setUint16(at + 2, v.year, true);
        cells[at + 4] = v.month;
        cells[at + 5] = v.day;
        cells[at + 6] = v.hour;
        cells[at + 7] = v.minute;
        dv.setUint32(at + 8, v.micros, true);
        cells[at + 12] = v.second;
        cells[at + 13] = v.fsp;
        break;
      case 'timestamp':
        cells[at + 1] = v.fsp;
        dv.setUint32(at + 4, v.micros, true);
        dv.setBigInt64(at + 8, BigInt(v.secs), true);
        break;
      case 'time':
        cells[at + 1] = v.negative ? 1 : 0;
        cells[at + 2] = v.fsp;
        cells[at + 3] = v.minutes;
        dv.setUint32(at + 4, v.hours, true);
        dv.setUint32(at + 8, v.micros, true);
        cells[at + 12] = v.seconds;
        break;
      default:
        throw new Error(`no tag ${tag}`);
    }
  });
  return { cells, data: new Uint8Array(data) };
}

/** Packs event views: {kind, table, pos, row, after: [start, len], before: [start, len]}. */
export function packViews(views) {
  const out = new Uint8Array(views.length * 36);
  const dv = new DataView(out.buffer);
  views.forEach((v, i) => {
    const at = i * 36;
    out[at] = KIND[v.kind];
    dv.setUint32(at + 4, v.table, true);
    dv.setBigUint64(at + 8, BigInt(v.pos ?? 0), true);
    dv.setUint32(at + 16, v.row ?? 0, true);
    dv.setUint32(at + 20, v.after?.[0] ?? 0, true);
    dv.setUint32(at + 24, v.after?.[1] ?? 0, true);
    dv.setUint32(at + 28, v.before?.[0] ?? 0, true);
    dv.setUint32(at + 32, v.before?.[1] ?? 0, true);
  });
  return out;
}

/** A WIT table-info as componentize-js lifts it. */
export function tableInfo(id, schema, table, columns, projection = columns.map((_, i) => i), primaryKey = [0]) {
  return {
    id, schema, table, columns, primaryKey: new Uint32Array(primaryKey), projection: new Uint32Array(projection),
  };
}

/** The text of a span of an answer's data. */
export function spanText(edits, span) {
  return new TextDecoder().decode(edits.data.subarray(span.start, span.start + span.len));
}
