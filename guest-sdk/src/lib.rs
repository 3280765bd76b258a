//! # sluice-guest: write Sluice transforms in Rust
//!
//! A transform filters, reshapes or routes the change events that Sluice reads from the MySQL
//! binlog before they reach Kafka. It is a WebAssembly component that Sluice runs in a sandbox.
//! This crate is all an author needs: a typed event API, one macro to export a transform, and a
//! native test harness ([`testing`]), so unit tests run with plain `cargo test` and no wasm.
//!
//! ```
//! use sluice_guest::{export_transform, Config, Event, Interest, Transform, Value};
//!
//! /// Replaces the `email` column with a placeholder.
//! pub struct Redact;
//!
//! impl Transform for Redact {
//!     fn init(_config: &Config) -> Result<(Self, Interest), String> {
//!         // Only `email` crosses into the sandbox; other columns stay in the host.
//!         Ok((Redact, Interest::columns(["email"])))
//!     }
//!
//!     fn process(&mut self, event: &mut Event<'_>) -> Result<(), String> {
//!         if event.get("email").is_some_and(|v| !v.is_null()) {
//!             event.set("email", Value::Text("<redacted>".into()))?;
//!         }
//!         Ok(())
//!     }
//! }
//!
//! export_transform!(Redact);
//!
//! // A native unit test:
//! use sluice_guest::testing::{Harness, TestEvent};
//! let mut h = Harness::<Redact>::new(&[]).unwrap();
//! let out = h.run(&[TestEvent::insert("shop", "orders", &[("id", Value::Int(1)), ("email", Value::Text("a@b.c".into()))])]).unwrap();
//! assert_eq!(out[0].get("email"), Some(&Value::Text("<redacted>".into())));
//! ```
//!
//! Build the component with `cargo build --release --target wasm32-wasip2` and name the
//! `.wasm` in Sluice's `TRANSFORMS` (or `[[transforms]]` in its TOML config).
//!
//! The rules an author can rely on:
//! - `process` is called once per event, in binlog order. Record changes through the
//!   [`Event`] methods; an event you do not touch is published unchanged (and is not even
//!   copied back out of the sandbox).
//! - [`Event::split`] starts another output event (a copy of the input); later calls apply to it.
//! - [`Event::add`] publishes a new column after the table's own (in every row image the event
//!   has); [`Event::rename`] and [`Event::remove`] change the table's columns. The rules for
//!   applying these edits live in `sluice-contract`, which the host and the native harness
//!   ([`testing`]) both run, so a test here sees exactly what Sluice publishes.
//! - Returning `Err` fails the batch; the transform's failure policy (`halt`, `skip`,
//!   `dead_letter`) decides what happens next.
//! - The sandbox has no filesystem, network or environment, a fixed clock and deterministic
//!   randomness, so a transform gives the same output for the same input every time.

use std::collections::HashMap;

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
// The raw ABI: wit-bindgen's generated exports and imports are `unsafe` FFI by nature, and its
// generated glue passes the lowered lists as separate arguments.
#[allow(unsafe_code, clippy::too_many_arguments)]
pub mod abi;
pub mod json;
pub mod testing;

pub use sluice_contract::{Interest, Kind, Op, Value};

/// Where an event came from: its transaction's start offset in the binlog, and its row in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    pub pos: u64,
    pub row: u32,
}

/// A table version as the host describes it.
#[derive(Debug, Clone)]
pub struct Table {
    pub schema: String,
    pub table: String,
    /// Every column, in table order.
    pub columns: Vec<String>,
    pub primary_key: Vec<u32>,
    /// Full column index → slot in the event's projected values.
    slots: Vec<Option<usize>>,
    /// Name → index, for wide tables (narrow ones are scanned, which is faster).
    by_name: Option<HashMap<String, u32>>,
}

impl Table {
    pub fn new(
        schema: String,
        table: String,
        columns: Vec<String>,
        primary_key: Vec<u32>,
        projection: Vec<u32>,
    ) -> Self {
        let mut slots = vec![None; columns.len()];
        for (slot, &col) in projection.iter().enumerate() {
            if let Some(s) = slots.get_mut(col as usize) {
                *s = Some(slot);
            }
        }
        let by_name = (columns.len() > 16).then(|| {
            columns
                .iter()
                .enumerate()
                .map(|(i, c)| (c.clone(), i as u32))
                .collect()
        });
        Table {
            schema,
            table,
            columns,
            primary_key,
            slots,
            by_name,
        }
    }

    /// The index of a column in [`Table::columns`].
    pub fn index(&self, column: &str) -> Option<u32> {
        match &self.by_name {
            Some(map) => map.get(column).copied(),
            None => self
                .columns
                .iter()
                .position(|c| c == column)
                .map(|i| i as u32),
        }
    }
}

/// A change event as a transform sees it, plus the changes the transform records.
pub struct Event<'t> {
    table: &'t Table,
    kind: Kind,
    after: Vec<Value>,
    before: Vec<Value>,
    position: Position,
    /// Ops of the current output, and of outputs finished by [`Event::split`]. Neither
    /// allocates until the transform records something.
    ops: Vec<Op>,
    done: Vec<Vec<Op>>,
}

impl<'t> Event<'t> {
    #[doc(hidden)]
    pub fn new(
        table: &'t Table,
        kind: Kind,
        after: Vec<Value>,
        before: Vec<Value>,
        position: Position,
    ) -> Self {
        Event {
            table,
            kind,
            after,
            before,
            position,
            ops: Vec::new(),
            done: Vec::new(),
        }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn schema(&self) -> &str {
        &self.table.schema
    }

    pub fn table(&self) -> &str {
        &self.table.table
    }

    /// The table's columns (all of them, in table order).
    pub fn columns(&self) -> &[String] {
        &self.table.columns
    }

    pub fn position(&self) -> Position {
        self.position
    }

    /// The value of a column in the row after the change, or before it for a delete. `None`
    /// when the column does not exist or is not in the transform's [`Interest`].
    pub fn get(&self, column: &str) -> Option<&Value> {
        let image = if self.kind == Kind::Delete {
            &self.before
        } else {
            &self.after
        };
        self.slot(column).and_then(|s| image.get(s))
    }

    /// The value of a column in the row before the change (update and delete only).
    pub fn get_before(&self, column: &str) -> Option<&Value> {
        self.slot(column).and_then(|s| self.before.get(s))
    }

    fn slot(&self, column: &str) -> Option<usize> {
        let i = self.table.index(column)?;
        self.table.slots[i as usize]
    }

    fn index(&self, column: &str) -> Result<u32, String> {
        self.table.index(column).ok_or_else(|| {
            format!(
                "{}.{} has no column {column:?}",
                self.table.schema, self.table.table
            )
        })
    }

    fn push(&mut self, op: Op) {
        self.ops.push(op);
    }

    /// Sets a column (in the row after the change; in the row before it for a delete).
    pub fn set(&mut self, column: &str, value: Value) -> Result<(), String> {
        let i = self.index(column)?;
        if let Some(s) = self.slot(column) {
            let image = if self.kind == Kind::Delete {
                &mut self.before
            } else {
                &mut self.after
            };
            if let Some(v) = image.get_mut(s) {
                *v = value.clone();
            }
        }
        self.push(if self.kind == Kind::Delete {
            Op::SetBefore(i, value)
        } else {
            Op::SetAfter(i, value)
        });
        Ok(())
    }

    /// Sets a column of the row before the change (update and delete).
    pub fn set_before(&mut self, column: &str, value: Value) -> Result<(), String> {
        let i = self.index(column)?;
        self.push(Op::SetBefore(i, value));
        Ok(())
    }

    /// Leaves this event (the current output) out.
    pub fn drop_event(&mut self) {
        self.push(Op::Drop);
    }

    /// Renames a column in the published event.
    pub fn rename(&mut self, column: &str, new_name: &str) -> Result<(), String> {
        let i = self.index(column)?;
        self.push(Op::RenameColumn(i, new_name.to_owned()));
        Ok(())
    }

    /// Leaves a column out of the published event.
    pub fn remove(&mut self, column: &str) -> Result<(), String> {
        let i = self.index(column)?;
        self.push(Op::DropColumn(i));
        Ok(())
    }

    /// Adds a column to the published event, after the table's columns, with `value` in each
    /// row image the event has (the row after the change, and the row before it for an update
    /// or a delete): for example the source database's name, or a value computed from others.
    /// Its name must be new (use [`Event::set`] for an existing column, or [`Event::rename`]
    /// it away first). A `truncate` event has no row and takes no column.
    pub fn add(&mut self, column: &str, value: Value) -> Result<(), String> {
        self.ops.push(Op::AddColumn(column.to_owned(), value));
        // The host checks the same rules on the whole edit.
        if let Err(e) = sluice_contract::edit::check(self.kind, &self.table.columns, &self.ops) {
            self.ops.pop();
            return Err(format!("{}.{}: {e}", self.table.schema, self.table.table));
        }
        Ok(())
    }

    /// Publishes to `topic` instead of the configured topic.
    pub fn set_topic(&mut self, topic: impl Into<String>) {
        self.push(Op::SetTopic(topic.into()));
    }

    /// Uses `key` as the Kafka key.
    pub fn set_key(&mut self, key: impl Into<Vec<u8>>) {
        self.push(Op::SetKey(key.into()));
    }

    pub fn add_header(&mut self, key: impl Into<String>, value: impl Into<Vec<u8>>) {
        self.push(Op::AddHeader(key.into(), value.into()));
    }

    /// Publishes `payload` as the message value instead of the contract's JSON.
    pub fn set_payload(&mut self, payload: impl Into<Vec<u8>>) {
        self.push(Op::SetPayload(payload.into()));
    }

    /// Starts another output event: a copy of the input event. Later calls apply to it.
    pub fn split(&mut self) {
        self.done.push(std::mem::take(&mut self.ops));
    }

    /// Like [`Event::new`], with an (empty) ops buffer to reuse.
    #[doc(hidden)]
    pub fn with_buffers(
        table: &'t Table,
        kind: Kind,
        after: Vec<Value>,
        before: Vec<Value>,
        position: Position,
        ops: Vec<Op>,
    ) -> Self {
        debug_assert!(ops.is_empty());
        Event {
            ops,
            ..Event::new(table, kind, after, before, position)
        }
    }

    /// Takes the event apart, to reuse its buffers for the next one: (after, before, outputs
    /// finished by [`Event::split`], ops of the current output).
    #[doc(hidden)]
    pub fn into_buffers(self) -> (Vec<Value>, Vec<Value>, Vec<Vec<Op>>, Vec<Op>) {
        (self.after, self.before, self.done, self.ops)
    }

    /// The recorded outputs; none when the event is to be published unchanged.
    #[doc(hidden)]
    pub fn into_outputs(self) -> Vec<Vec<Op>> {
        let mut outputs = self.done;
        if outputs.is_empty() && self.ops.is_empty() {
            return outputs;
        }
        outputs.push(self.ops);
        outputs
    }
}

/// A transform's configuration: the key/value pairs from the host's config.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pairs: Vec<(String, String)>,
}

impl Config {
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        Config { pairs }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A required key, with an error that names it.
    pub fn require(&self, key: &str) -> Result<&str, String> {
        self.get(key)
            .ok_or_else(|| format!("the transform needs the config key {key:?}"))
    }

    /// A comma-separated list (empty when the key is absent).
    pub fn list(&self, key: &str) -> Vec<String> {
        self.get(key)
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A transform. Implement it and export it with [`export_transform!`].
pub trait Transform: Sized + 'static {
    /// Builds the transform from its configuration and says what it needs to see.
    fn init(config: &Config) -> Result<(Self, Interest), String>;

    /// Handles one event; record changes through the [`Event`] methods.
    fn process(&mut self, event: &mut Event<'_>) -> Result<(), String>;
}

/// Log levels of [`log`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Writes to the host's log, tagged with the transform's name (stderr when run natively).
pub fn log(level: LogLevel, message: &str) {
    #[cfg(target_arch = "wasm32")]
    abi::host_log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[{level:?}] {message}");
}

/// Exports a [`Transform`] as the component's `init` and `transform` functions.
#[macro_export]
macro_rules! export_transform {
    ($t:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct __SluiceExports;
            impl $crate::abi::GuestExports for __SluiceExports {
                fn init(
                    config: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
                ) -> ::std::result::Result<
                    $crate::abi::sluice::transform::types::Interest,
                    ::std::string::String,
                > {
                    $crate::abi::init::<$t>(config)
                }
                fn transform(
                    tables: ::std::vec::Vec<$crate::abi::sluice::transform::types::TableInfo>,
                    events: ::std::vec::Vec<u8>,
                    cells: ::std::vec::Vec<u8>,
                    data: ::std::vec::Vec<u8>,
                ) -> ::std::result::Result<
                    $crate::abi::sluice::transform::types::Edits,
                    ::std::string::String,
                > {
                    $crate::abi::transform(tables, events, cells, data)
                }
            }
    $crate::abi::export!(__SluiceExports with_types_in $crate::abi);
        };
    };
}
