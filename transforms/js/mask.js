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

// The bytes to hash are written into one reused buffer, by hand: in the component each new
// buffer, and each TextEncoder call, leaves memory that only a full GC gives back (and the
// sandbox's memory cap comes first).
let scratch = new Uint8Array(1024);

function room(n, keep) {
  if (scratch.length < n) {
    const bigger = new Uint8Array(Math.max(n, scratch.length * 2));
    bigger.set(scratch.subarray(0, keep));
    scratch = bigger;
  }
}

/** Writes the UTF-8 of `s` into `scratch` from `at`; returns where it ends. */
function utf8(s, at) {
  room(at + s.length * 3, at);
  const b = scratch;
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      b[at++] = c;
    } else if (c < 0x800) {
      b[at++] = 0xc0 | (c >> 6);
      b[at++] = 0x80 | (c & 63);
    } else if (c >= 0xd800 && c < 0xdc00 && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      c = 0x10000 + ((c - 0xd800) << 10) + (s.charCodeAt(++i) - 0xdc00);
      b[at++] = 0xf0 | (c >> 18);
      b[at++] = 0x80 | ((c >> 12) & 63);
      b[at++] = 0x80 | ((c >> 6) & 63);
      b[at++] = 0x80 | (c & 63);
    } else {
      if (c >= 0xd800 && c < 0xe000) c = 0xfffd; // a lone surrogate, as TextEncoder writes it
      b[at++] = 0xe0 | (c >> 12);
      b[at++] = 0x80 | ((c >> 6) & 63);
      b[at++] = 0x80 | (c & 63);
    }
  }
  return at;
}

/** Hex SHA-256 of `salt || value` (`value`: a string, hashed as UTF-8, or a Uint8Array). */
export function hashHex(salt, value) {
  let n = utf8(salt, 0);
  if (typeof value === 'string') {
    n = utf8(value, n);
  } else {
    room(n + value.length, n);
    scratch.set(value, n);
    n += value.length;
  }
  return sha256Hex(scratch.subarray(0, n));
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
