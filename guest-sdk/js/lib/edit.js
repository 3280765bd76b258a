// Edits: how a transform's answer changes an event, with the rules of contract/src/edit.rs
// (the host's own), so that the native harness publishes what Sluice publishes.
//
// An op is a small object {k, a, b, next}: `k` the WIT `op` case's index, `a` and `b` its
// arguments: drop (0), set-after (1: column, cell), set-before (2: column, cell),
// rename-column (3: column, name), drop-column (4: column), add-column (5: name, cell),
// set-topic (6: topic), set-key (7: bytes), add-header (8: key, bytes), set-payload (9: bytes).
// Cells are `{tag, val}` (values.js). `next` chains an event's ops (no arrays: in the component
// an array is a costly allocation).

import { rustDebug } from './values.js';

export const DROP = 0;
export const SET_AFTER = 1;
export const SET_BEFORE = 2;
export const RENAME = 3;
export const DROP_COLUMN = 4;
export const ADD_COLUMN = 5;
export const SET_TOPIC = 6;
export const SET_KEY = 7;
export const ADD_HEADER = 8;
export const SET_PAYLOAD = 9;

/** A new op. (`seen` chains the ops whose value a later `get` returns: Event.set's.) */
export function op(k, a, b) {
  return {
    k, a, b, next: null, seen: null,
  };
}

/**
 * Checks that `ops` can be applied to an event of `kind` with these `columns`: the error's
 * text (EditError's Display in edit.rs), or null.
 */
export function check(kind, columns, ops) {
  const n = columns.length;
  let reshaped = false;
  for (const op of ops) {
    switch (op.k) {
      case SET_AFTER:
      case SET_BEFORE:
      case DROP_COLUMN:
      case RENAME:
        if (!(op.a < n)) return `edited column ${op.a} of a table that has ${n} columns`;
        if (op.k === RENAME) reshaped = true;
        break;
      case ADD_COLUMN:
        if (kind === 'truncate') {
          return `added the column ${rustDebug(op.a)} to a truncate event, which has no row (let truncate events pass unchanged)`;
        }
        reshaped = true;
        break;
      default:
    }
  }
  if (reshaped) {
    const seen = new Set();
    for (const name of shape(columns, [], ops).names) {
      if (seen.has(name)) {
        return `the edited event would have two columns named ${rustDebug(name)}: rename or remove one of them (to change a column the table has, set it instead of adding it)`;
      }
      seen.add(name);
    }
  }
  return null;
}

/** The published names and key after `ops`, and which input columns were removed (or null). */
function shape(columns, primaryKey, ops) {
  const names = columns.slice();
  let removed = null;
  const added = [];
  for (const op of ops) {
    if (op.k === RENAME) {
      if (op.a < names.length) names[op.a] = op.b;
    } else if (op.k === DROP_COLUMN) {
      if (removed === null) removed = new Array(columns.length).fill(false);
      if (op.a < removed.length) removed[op.a] = true;
    } else if (op.k === ADD_COLUMN) {
      added.push(op.a);
    }
  }
  let key = primaryKey.slice();
  let kept = names;
  if (removed !== null) {
    kept = names.filter((_, i) => !(removed[i] ?? false));
    // Re-number the key; a removed key column leaves it.
    key = [];
    for (const old of primaryKey) {
      if (old < removed.length && !removed[old]) {
        let k = 0;
        for (let i = 0; i < old; i++) if (!removed[i]) k++;
        key.push(k);
      }
    }
  }
  return { names: kept.concat(added), key, removed };
}

/**
 * Applies one output's (checked) ops to `target` ({kind, columns, primaryKey, after, before,
 * topic, key, headers, payload}; images hold cells). Returns false when the output is dropped
 * (then `target` is left as it was).
 */
export function apply(target, ops) {
  if (ops.some((op) => op.k === DROP)) return false;
  const structural = ops.some((op) => op.k === RENAME || op.k === DROP_COLUMN || op.k === ADD_COLUMN);
  const reshaped = structural ? shape(target.columns, target.primaryKey, ops) : null;
  const { after, before, kind } = target;
  const added = [];
  for (const op of ops) {
    if (op.k === SET_AFTER || op.k === SET_BEFORE) {
      const image = op.k === SET_AFTER ? after : before;
      if (op.a < image.length) image[op.a] = op.b;
    } else if (op.k === ADD_COLUMN) {
      added.push(op.b);
    }
  }
  const removed = reshaped?.removed;
  if (removed) {
    for (const image of [after, before]) {
      const kept = image.filter((_, i) => !(removed[i] ?? false));
      image.length = 0;
      image.push(...kept);
    }
  }
  // An added column takes its value in each row image the event's kind has.
  if (added.length) {
    if (kind !== 'delete' && kind !== 'truncate') after.push(...added);
    if (kind === 'update' || kind === 'delete') before.push(...added);
  }
  if (reshaped) {
    target.columns = reshaped.names;
    target.primaryKey = reshaped.key;
  }
  for (const op of ops) {
    switch (op.k) {
      case SET_TOPIC:
        target.topic = op.a;
        break;
      case SET_KEY:
        target.key = op.a;
        break;
      case ADD_HEADER:
        target.headers.push([op.a, op.b]);
        break;
      case SET_PAYLOAD:
        target.payload = op.a;
        break;
      default:
    }
  }
  return true;
}
