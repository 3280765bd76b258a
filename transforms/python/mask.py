"""`mask`: hashes or redacts configured columns (PII such as emails) before they leave.

The Python port of `transforms/mask` (Rust); both give the same output for the same events.

Config:
- `columns`: comma-separated column names;
- `mode`: `hash` (the default: hex SHA-256 of `salt` + the value, stable, so joins still
  work) or `redact` (the text `<redacted>`);
- `salt`: optional.

NULLs stay NULL. Both the row after and the row before the change are masked. A table-level
`truncate` event has no values and passes unchanged.
"""

import hashlib
from decimal import Decimal

import sluice
from sluice import Json, Kind

REDACTED = "<redacted>"


@sluice.transform
class Mask:
    def __init__(self, config: sluice.Config):
        self.columns = config.list("columns")
        if not self.columns:
            raise sluice.Error("set `columns` to the comma-separated columns to mask")
        mode = config.get("mode", "hash")
        if mode not in ("hash", "redact"):
            raise sluice.Error(f'unknown mode "{mode}": use hash or redact')
        self.redact = mode == "redact"
        self.salt = config.get("salt", "").encode("utf-8")

    def interest(self):
        return sluice.Interest.columns(self.columns)

    def process(self, event: sluice.Event):
        for col in self.columns:
            if event.kind is not Kind.DELETE:
                masked = self.mask(event.get(col))
                if masked is not None:
                    event.set(col, masked)
            if event.kind in (Kind.UPDATE, Kind.DELETE):
                masked = self.mask(event.get_before(col))
                if masked is not None:
                    event.set_before(col, masked)

    def mask(self, v):
        if v is None:
            return None
        if isinstance(v, str):
            data = v.encode("utf-8")
        elif isinstance(v, Decimal):
            data = format(v, "f").encode("ascii")
        elif isinstance(v, Json):
            # The document's compact text, as the host writes it.
            data = v.text.encode("utf-8")
        elif isinstance(v, bytes):
            data = v
        else:
            return REDACTED
        if self.redact:
            return REDACTED
        return hash_hex(self.salt, data)


def hash_hex(salt: bytes, value: bytes) -> str:
    """Hex SHA-256 of `salt || value`."""
    return hashlib.sha256(salt + value).hexdigest()
