"""The rules for applying an output's ops to an event, for the native harness.

Design note: the host applies edits with `sluice_contract::edit` (Rust); this is the same
algorithm, rule for rule, so that a `pytest` run sees what Sluice publishes:
- column indexes refer to the input table's columns, whatever other ops of the output do;
- removing a column takes it out of the names, both row images and the key (re-numbered);
- an added column follows the remaining ones, with its value in each row image the kind has;
- names are unique after all ops; a `truncate` event takes no added column.
"""

from __future__ import annotations

from .event import Kind, Op


def check(kind: Kind, columns, ops):
    """Why `ops` cannot be applied to an event of `kind` with `columns`, or None."""
    n = len(columns)
    reshaped = False
    for op in ops:
        code = op[0]
        if code in (Op.SET_AFTER, Op.SET_BEFORE, Op.DROP_COLUMN, Op.RENAME_COLUMN):
            if op[1] >= n:
                return f"edited column {op[1]} of a table that has {n} columns"
            reshaped |= code == Op.RENAME_COLUMN
        elif code == Op.ADD_COLUMN:
            if kind is Kind.TRUNCATE:
                return (f'added the column "{op[1]}" to a truncate event, which has no row '
                        "(let truncate events pass unchanged)")
            reshaped = True
    if reshaped:
        seen = set()
        for name in _shape(columns, [], ops)[0]:
            if name in seen:
                return (f'the edited event would have two columns named "{name}": rename or '
                        "remove one of them (to change a column the table has, set it instead "
                        "of adding it)")
            seen.add(name)
    return None


def _shape(columns, primary_key, ops):
    names = list(columns)
    removed = None
    added = []
    for op in ops:
        if op[0] == Op.RENAME_COLUMN and op[1] < len(names):
            names[op[1]] = op[2]
        elif op[0] == Op.DROP_COLUMN:
            if removed is None:
                removed = [False] * len(columns)
            if op[1] < len(removed):
                removed[op[1]] = True
        elif op[0] == Op.ADD_COLUMN:
            added.append(op[1])
    key = list(primary_key)
    if removed is not None:
        names = [c for i, c in enumerate(names) if not removed[i]]
        key = [sum(1 for r in removed[:k] if not r) for k in key
               if k < len(removed) and not removed[k]]
    return names + added, key, removed


def apply(target, ops) -> bool:
    """Applies one output's (checked) ops to `target` (an object with `kind`, `columns`,
    `primary_key`, `after`, `before`, `topic`, `key`, `headers`, `payload`). False: dropped."""
    if any(op[0] == Op.DROP for op in ops):
        return False
    structural = any(op[0] in (Op.RENAME_COLUMN, Op.DROP_COLUMN, Op.ADD_COLUMN) for op in ops)
    reshaped = _shape(target.columns, target.primary_key, ops) if structural else None
    added = []
    for op in ops:
        if op[0] == Op.SET_AFTER and op[1] < len(target.after):
            target.after[op[1]] = op[2]
        elif op[0] == Op.SET_BEFORE and op[1] < len(target.before):
            target.before[op[1]] = op[2]
        elif op[0] == Op.ADD_COLUMN:
            added.append(op[2])
    removed = reshaped[2] if reshaped else None
    if removed is not None:
        keep = lambda image: [v for i, v in enumerate(image)
                              if not (i < len(removed) and removed[i])]
        target.after = keep(target.after)
        target.before = keep(target.before)
    if added:
        if target.kind not in (Kind.DELETE, Kind.TRUNCATE):
            target.after.extend(added)
        if target.kind in (Kind.UPDATE, Kind.DELETE):
            target.before.extend(added)
    if reshaped:
        target.columns, target.primary_key = reshaped[0], reshaped[1]
    for op in ops:
        if op[0] == Op.SET_TOPIC:
            target.topic = op[1]
        elif op[0] == Op.SET_KEY:
            target.key = op[1]
        elif op[0] == Op.ADD_HEADER:
            target.headers.append((op[1], op[2]))
        elif op[0] == Op.SET_PAYLOAD:
            target.payload = op[1]
    return True
