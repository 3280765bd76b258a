// `mask`: hashes or redacts configured columns (PII such as emails) before they leave. A port of
// transforms/mask (Rust): the same config, errors and output.
//
// Config:
// - `columns`: comma-separated column names;
// - `mode`: `hash` (the default: hex SHA-256 of `salt` + the value, stable, so joins still
//   work) or `redact` (the text `<redacted>`);
// - `salt`: optional.
//
// NULLs stay NULL. Both the row after and the row before the change are masked. A table-level
// `truncate` event has no values and passes unchanged.

import { exportTransform, Interest, Kind, SluiceError, Decimal, Json, rustDebug } from 'sluice-transform';
import { sha256Hex } from './sha256.js';

const UTF8 = new TextEncoder();

// The bytes to hash are written into one reused buffer: in the component, every new buffer's
// memory waits for a full GC to be freed, and the sandbox's memory cap comes first.
let scratch = new Uint8Array(1024);

function room(n) {
  if (scratch.length < n) scratch = new Uint8Array(Math.max(n, scratch.length * 2));
}


/** Hex SHA-256 of `salt || value` (`value`: a string, hashed as UTF-8, or a Uint8Array). */
export function hashHex(salt, value) {
  if (typeof value === 'string') {
    const text = salt + value;
    room(text.length * 3);
    return sha256Hex(scratch.subarray(0, UTF8.encodeInto(text, scratch).written));
  }
  room(salt.length * 3 + value.length);
  const n = UTF8.encodeInto(salt, scratch).written;
  scratch.set(value, n);
  return sha256Hex(scratch.subarray(0, n + value.length));
}

export class Mask {
  constructor(config) {
    this.columns = config.list('columns');
    if (this.columns.length === 0) {
      throw new SluiceError('set `columns` to the comma-separated columns to mask');
    }
    const mode = config.get('mode') ?? 'hash';
    if (mode !== 'hash' && mode !== 'redact') {
      throw new SluiceError(`unknown mode ${rustDebug(mode)}: use hash or redact`);
    }
    this.redact = mode === 'redact';
    this.salt = config.get('salt') ?? '';
  }

  interest() {
    return Interest.columns(this.columns);
  }

  process(event) {
    const kind = event.kind;
    for (const col of this.columns) {
      if (kind !== Kind.DELETE) {
        const v = this.mask(event.get(col));
        if (v !== null) event.set(col, v);
      }
      if (kind === Kind.UPDATE || kind === Kind.DELETE) {
        const v = this.mask(event.getBefore(col));
        if (v !== null) event.setBefore(col, v);
      }
    }
  }

  /** The masked value, or null to leave it (NULL or absent). */
  mask(v) {
    if (v === undefined || v === null) return null;
    let bytes;
    if (typeof v === 'string') bytes = v;
    else if (v instanceof Decimal) bytes = v.text;
    // The document's compact text, as the host wrote it.
    else if (v instanceof Json) bytes = v.text;
    else if (v instanceof Uint8Array) bytes = v;
    else return '<redacted>';
    if (this.redact) return '<redacted>';
    return hashHex(this.salt, bytes);
  }
}

export const { init, transform } = exportTransform(Mask);
