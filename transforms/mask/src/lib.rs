//! `mask`: hashes or redacts configured columns (PII such as emails) before they leave.
//!
//! Config:
//! - `columns`: comma-separated column names;
//! - `mode`: `hash` (the default: hex SHA-256 of `salt` + the value, stable, so joins still
//!   work) or `redact` (the text `<redacted>`);
//! - `salt`: optional.
//!
//! NULLs stay NULL. Both the row after and the row before the change are masked. A table-level
//! `truncate` event has no values and passes unchanged.

use sha2::{Digest, Sha256};
use sluice_guest::{export_transform, Config, Event, Interest, Kind, Transform, Value};

pub struct Mask {
    columns: Vec<String>,
    redact: bool,
    salt: String,
}

impl Transform for Mask {
    fn init(config: &Config) -> Result<(Self, Interest), String> {
        let columns = config.list("columns");
        if columns.is_empty() {
            return Err("set `columns` to the comma-separated columns to mask".into());
        }
        let redact = match config.get("mode").unwrap_or("hash") {
            "hash" => false,
            "redact" => true,
            other => return Err(format!("unknown mode {other:?}: use hash or redact")),
        };
        let salt = config.get("salt").unwrap_or("").to_owned();
        Ok((
            Mask {
                columns: columns.clone(),
                redact,
                salt,
            },
            Interest::columns(columns),
        ))
    }

    fn process(&mut self, event: &mut Event<'_>) -> Result<(), String> {
        for col in &self.columns {
            if event.kind() != Kind::Delete {
                if let Some(v) = event.get(col).and_then(|v| self.mask(v)) {
                    event.set(col, v)?;
                }
            }
            if event.kind() == Kind::Update || event.kind() == Kind::Delete {
                if let Some(v) = event.get_before(col).and_then(|v| self.mask(v)) {
                    event.set_before(col, v)?;
                }
            }
        }
        Ok(())
    }
}

impl Mask {
    fn mask(&self, v: &Value) -> Option<Value> {
        let json;
        let bytes: &[u8] = match v {
            Value::Null => return None,
            Value::Text(s) | Value::Decimal(s) => s.as_bytes(),
            Value::Json(j) => {
                // The document's compact text, as the host writes it.
                json = j.to_string();
                json.as_bytes()
            }
            Value::Bytes(b) => b,
            _ => return Some(Value::Text("<redacted>".into())),
        };
        if self.redact {
            return Some(Value::Text("<redacted>".into()));
        }
        Some(Value::Text(hash_hex(&self.salt, bytes)))
    }
}

/// Hex SHA-256 of `salt || value`.
pub fn hash_hex(salt: &str, value: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update(value);
    let digest = h.finalize();
    let mut out = [0u8; 64];
    for (i, b) in digest.iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 15)];
    }
    // Only ASCII hex digits were written.
    String::from_utf8(out.to_vec()).expect("hex is ASCII")
}

export_transform!(Mask);

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_guest::testing::{Harness, TestEvent};

    #[test]
    fn hashes_emails_in_both_images() {
        let mut h = Harness::<Mask>::new(&[("columns", "email")]).unwrap();
        let before = [
            ("id", Value::Int(1)),
            ("email", Value::Text("a@x.io".into())),
        ];
        let after = [
            ("id", Value::Int(1)),
            ("email", Value::Text("b@x.io".into())),
        ];
        let out = h
            .run(&[TestEvent::update("shop", "users", &before, &after)])
            .unwrap();
        assert_eq!(
            out[0].get("email"),
            Some(&Value::Text(hash_hex("", b"b@x.io")))
        );
        assert_eq!(out[0].before[1], Value::Text(hash_hex("", b"a@x.io")));
        assert_eq!(out[0].get("id"), Some(&Value::Int(1)));
        // A known SHA-256 vector.
        assert_eq!(
            hash_hex("", b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn truncate_passes_unchanged() {
        let mut h = Harness::<Mask>::new(&[("columns", "email")]).unwrap();
        let ev = TestEvent::truncate("shop", "users");
        let out = h.run(std::slice::from_ref(&ev)).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].kind, Kind::Truncate);
        assert!(out[0].columns.is_empty() && out[0].after.is_empty());
        assert!(out[0].payload.is_none() && out[0].topic.is_none());
    }

    #[test]
    fn redacts_and_keeps_nulls() {
        let mut h =
            Harness::<Mask>::new(&[("columns", "email,phone"), ("mode", "redact")]).unwrap();
        let ev = TestEvent::insert(
            "s",
            "t",
            &[("email", Value::Text("a@x".into())), ("phone", Value::Null)],
        );
        let out = h.run(&[ev]).unwrap();
        assert_eq!(out[0].get("email"), Some(&Value::Text("<redacted>".into())));
        assert_eq!(out[0].get("phone"), Some(&Value::Null));
    }
}
