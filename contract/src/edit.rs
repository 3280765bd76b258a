//! Edits: how a transform's answer changes an event.
//!
//! Design note: a transform never returns a whole new event. It returns, per output, a list of
//! [`Op`]s against the input event, and an event without ops is published unchanged. The rules
//! for applying them live here, once: the host applies them to its events and the SDK's native
//! harness to its test events, through [`Target`]. [`check`] runs first, on the whole list, so
//! that [`apply`] cannot fail halfway.
//!
//! The rules:
//! - column indexes refer to the input table's columns (the `table-info` the transform saw),
//!   whatever other ops of the same output do;
//! - `DropColumn` removes the column from the published names and both row images, and from
//!   the primary key (the remaining key columns are re-numbered);
//! - `AddColumn` appends a column after the table's (remaining) columns, in op order, with the
//!   same value in each row image the event has (after, and before for an update or a delete);
//!   a `truncate` event has no row and takes none;
//! - after all ops, column names are unique;
//! - routing ops (`SetTopic`, `SetKey`, `AddHeader`, `SetPayload`) do not touch the row.

use crate::{Kind, Value};

/// One change to an output event. Mirrors the WIT `op`.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Do not publish this output.
    Drop,
    /// Set a column of the row after the change (index into the table's columns).
    SetAfter(u32, Value),
    /// Set a column of the row before the change.
    SetBefore(u32, Value),
    /// Rename a column in the published event.
    RenameColumn(u32, String),
    /// Leave a column out of the published event.
    DropColumn(u32),
    /// Add a column after the table's columns, with this value in each row image.
    AddColumn(String, Value),
    /// Publish to this topic instead of the configured one.
    SetTopic(String),
    /// Use these bytes as the Kafka key.
    SetKey(Vec<u8>),
    AddHeader(String, Vec<u8>),
    /// Publish these bytes as the message value instead of the contract's JSON.
    SetPayload(Vec<u8>),
}

/// An edit list that cannot be applied to its event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    /// A column index beyond the table's columns.
    #[error("edited column {index} of a table that has {columns} columns")]
    NoColumn { index: u32, columns: usize },
    /// Two published columns would have the same name.
    #[error("the edited event would have two columns named {0:?}: rename or remove one of them (to change a column the table has, set it instead of adding it)")]
    DuplicateColumn(String),
    /// A column added to a `truncate` event, which has no row.
    #[error("added the column {0:?} to a truncate event, which has no row (let truncate events pass unchanged)")]
    AddToTruncate(String),
}

/// What an event must offer for [`apply`] to edit it in place.
pub trait Target {
    /// What happened to the row: it says which row images the event has.
    fn kind(&self) -> Kind;
    /// The published column names, in order.
    fn columns(&self) -> &[String];
    /// Indexes into [`Target::columns`] of the primary key, in key order.
    fn primary_key(&self) -> &[usize];
    /// The row after the change and the row before it (either may be empty).
    fn images(&mut self) -> (&mut Vec<Value>, &mut Vec<Value>);
    /// Replaces the columns and the key, when ops renamed, dropped or added columns.
    fn reshape(&mut self, columns: Vec<String>, primary_key: Vec<usize>);
    fn set_topic(&mut self, topic: String);
    fn set_key(&mut self, key: Vec<u8>);
    fn add_header(&mut self, key: String, value: Vec<u8>);
    fn set_payload(&mut self, payload: Vec<u8>);
}

/// Checks that `ops` can be applied to an event of `kind` with these `columns`.
pub fn check(kind: Kind, columns: &[String], ops: &[Op]) -> Result<(), EditError> {
    let n = columns.len();
    let col = |i: u32| {
        if (i as usize) < n {
            Ok(())
        } else {
            Err(EditError::NoColumn {
                index: i,
                columns: n,
            })
        }
    };
    let mut reshaped = false;
    for op in ops {
        match op {
            Op::SetAfter(i, _) | Op::SetBefore(i, _) | Op::DropColumn(i) => col(*i)?,
            Op::RenameColumn(i, _) => {
                col(*i)?;
                reshaped = true;
            }
            Op::AddColumn(name, _) => {
                if kind == Kind::Truncate {
                    return Err(EditError::AddToTruncate(name.clone()));
                }
                reshaped = true;
            }
            _ => {}
        }
    }
    if reshaped {
        let names = shape(columns, &[], ops).0;
        let mut seen = std::collections::HashSet::with_capacity(names.len());
        for name in names {
            if !seen.insert(name) {
                return Err(EditError::DuplicateColumn(name.clone()));
            }
        }
    }
    Ok(())
}

/// Applies one output's (checked) ops to `target`. Returns `false` when the output is dropped
/// (then `target` is left as it was). The ops' values and strings are moved into the event, so
/// `ops` is left holding placeholders.
pub fn apply<T: Target>(target: &mut T, ops: &mut [Op]) -> bool {
    if ops.iter().any(|op| matches!(op, Op::Drop)) {
        return false;
    }
    let structural = ops.iter().any(|op| {
        matches!(
            op,
            Op::RenameColumn(..) | Op::DropColumn(_) | Op::AddColumn(..)
        )
    });
    let reshaped = structural.then(|| {
        let (names, key, removed) = shape(target.columns(), target.primary_key(), ops);
        let names: Vec<String> = names.into_iter().cloned().collect();
        (names, key, removed)
    });
    let removed = reshaped.as_ref().and_then(|r| r.2.clone());
    let kind = target.kind();
    let mut added = Vec::new();
    {
        let (after, before) = target.images();
        for op in ops.iter_mut() {
            let (image, i, v) = match op {
                Op::SetAfter(i, v) => (&mut *after, i, v),
                Op::SetBefore(i, v) => (&mut *before, i, v),
                Op::AddColumn(_, v) => {
                    added.push(&*v);
                    continue;
                }
                _ => continue,
            };
            if let Some(x) = image.get_mut(*i as usize) {
                *x = std::mem::replace(v, Value::Null);
            }
        }
        for image in [&mut *after, &mut *before] {
            if let Some(removed) = &removed {
                let mut i = 0;
                image.retain(|_| {
                    i += 1;
                    !removed.get(i - 1).copied().unwrap_or(false)
                });
            }
        }
        // An added column takes its value in each row image the event's kind has (not in an
        // image that happens to be empty).
        if !added.is_empty() {
            if !matches!(kind, Kind::Delete | Kind::Truncate) {
                after.extend(added.iter().map(|v| (*v).clone()));
            }
            if matches!(kind, Kind::Update | Kind::Delete) {
                before.extend(added.iter().map(|v| (*v).clone()));
            }
        }
    }
    if let Some((columns, primary_key, _)) = reshaped {
        target.reshape(columns, primary_key);
    }
    for op in ops.iter_mut() {
        match op {
            Op::SetTopic(t) => target.set_topic(std::mem::take(t)),
            Op::SetKey(k) => target.set_key(std::mem::take(k)),
            Op::AddHeader(k, v) => target.add_header(std::mem::take(k), std::mem::take(v)),
            Op::SetPayload(p) => target.set_payload(std::mem::take(p)),
            _ => {}
        }
    }
    true
}

/// The published column names and key after `ops`, and which input columns were removed
/// (`None`: none).
fn shape<'a>(
    columns: &'a [String],
    primary_key: &[usize],
    ops: &'a [Op],
) -> (Vec<&'a String>, Vec<usize>, Option<Vec<bool>>) {
    let mut names: Vec<&String> = columns.iter().collect();
    let mut removed: Option<Vec<bool>> = None;
    let mut added = Vec::new();
    for op in ops {
        match op {
            Op::RenameColumn(i, name) => {
                if let Some(c) = names.get_mut(*i as usize) {
                    *c = name;
                }
            }
            Op::DropColumn(i) => {
                if let Some(r) = removed
                    .get_or_insert_with(|| vec![false; columns.len()])
                    .get_mut(*i as usize)
                {
                    *r = true;
                }
            }
            Op::AddColumn(name, _) => added.push(name),
            _ => {}
        }
    }
    let mut key = primary_key.to_vec();
    if let Some(removed) = &removed {
        let mut i = 0;
        names.retain(|_| {
            i += 1;
            !removed.get(i - 1).copied().unwrap_or(false)
        });
        // Re-number the key; a removed key column leaves it.
        let new_index = |old: usize| {
            (!removed.get(old).copied().unwrap_or(true))
                .then(|| removed[..old].iter().filter(|r| !**r).count())
        };
        key = key.into_iter().filter_map(new_index).collect();
    }
    names.extend(added);
    (names, key, removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal [`Target`].
    #[derive(Debug, Default, PartialEq)]
    struct Row {
        columns: Vec<String>,
        key: Vec<usize>,
        after: Vec<Value>,
        before: Vec<Value>,
        topic: Option<String>,
        key_bytes: Option<Vec<u8>>,
        headers: Vec<(String, Vec<u8>)>,
        payload: Option<Vec<u8>>,
    }

    impl Target for Row {
        fn kind(&self) -> Kind {
            if self.before.is_empty() {
                Kind::Insert
            } else if self.after.is_empty() {
                Kind::Delete
            } else {
                Kind::Update
            }
        }
        fn columns(&self) -> &[String] {
            &self.columns
        }
        fn primary_key(&self) -> &[usize] {
            &self.key
        }
        fn images(&mut self) -> (&mut Vec<Value>, &mut Vec<Value>) {
            (&mut self.after, &mut self.before)
        }
        fn reshape(&mut self, columns: Vec<String>, primary_key: Vec<usize>) {
            self.columns = columns;
            self.key = primary_key;
        }
        fn set_topic(&mut self, topic: String) {
            self.topic = Some(topic);
        }
        fn set_key(&mut self, key: Vec<u8>) {
            self.key_bytes = Some(key);
        }
        fn add_header(&mut self, key: String, value: Vec<u8>) {
            self.headers.push((key, value));
        }
        fn set_payload(&mut self, payload: Vec<u8>) {
            self.payload = Some(payload);
        }
    }

    fn row() -> Row {
        Row {
            columns: ["a", "id", "email"].map(String::from).to_vec(),
            key: vec![1],
            after: vec![Value::Int(1), Value::Int(2), Value::Text("x@y".into())],
            before: vec![Value::Int(0), Value::Int(2), Value::Text("w@y".into())],
            ..Row::default()
        }
    }

    fn t(s: &str) -> Value {
        Value::Text(s.into())
    }

    #[test]
    fn set_rename_and_route() {
        let mut r = row();
        let mut ops = vec![
            Op::SetAfter(2, t("*")),
            Op::SetBefore(2, t("-")),
            Op::RenameColumn(2, "mail".into()),
            Op::SetTopic("t2".into()),
            Op::SetKey(b"k".to_vec()),
            Op::AddHeader("h".into(), b"v".to_vec()),
            Op::SetPayload(b"{}".to_vec()),
        ];
        check(Kind::Update, &r.columns, &ops).unwrap();
        assert!(apply(&mut r, &mut ops));
        assert_eq!(r.columns, ["a", "id", "mail"]);
        assert_eq!(r.after[2], t("*"));
        assert_eq!(r.before[2], t("-"));
        assert_eq!(r.key, vec![1]);
        assert_eq!(r.topic.as_deref(), Some("t2"));
        assert_eq!(r.key_bytes.as_deref(), Some(&b"k"[..]));
        assert_eq!(r.headers, vec![("h".to_owned(), b"v".to_vec())]);
        assert_eq!(r.payload.as_deref(), Some(&b"{}"[..]));
    }

    #[test]
    fn dropping_a_column_renumbers_the_key() {
        let mut r = row();
        assert!(apply(&mut r, &mut [Op::DropColumn(0)]));
        assert_eq!(r.columns, ["id", "email"]);
        assert_eq!(r.key, vec![0]);
        assert_eq!(r.after, vec![Value::Int(2), t("x@y")]);
        assert_eq!(r.before, vec![Value::Int(2), t("w@y")]);
        // A removed key column leaves the key.
        let mut r = row();
        assert!(apply(&mut r, &mut [Op::DropColumn(1)]));
        assert!(r.key.is_empty());
    }

    #[test]
    fn added_columns_follow_the_remaining_ones_in_each_image() {
        let mut r = row();
        let mut ops = vec![
            Op::AddColumn("source".into(), t("db1")),
            Op::DropColumn(0),
            Op::AddColumn("n".into(), Value::Int(7)),
        ];
        check(Kind::Update, &r.columns, &ops).unwrap();
        assert!(apply(&mut r, &mut ops));
        assert_eq!(r.columns, ["id", "email", "source", "n"]);
        assert_eq!(
            r.after,
            vec![Value::Int(2), t("x@y"), t("db1"), Value::Int(7)]
        );
        assert_eq!(
            r.before,
            vec![Value::Int(2), t("w@y"), t("db1"), Value::Int(7)]
        );
        assert_eq!(r.key, vec![0]);
        // An insert has no before image: it stays empty.
        let mut r = row();
        r.before.clear();
        assert!(apply(&mut r, &mut [Op::AddColumn("s".into(), Value::Null)]));
        assert_eq!(r.after.len(), 4);
        assert!(r.before.is_empty());
    }

    #[test]
    fn check_refuses_what_apply_cannot_do() {
        let cols = row().columns;
        assert_eq!(
            check(Kind::Insert, &cols, &[Op::SetAfter(3, Value::Null)]),
            Err(EditError::NoColumn {
                index: 3,
                columns: 3
            })
        );
        let dup = check(
            Kind::Insert,
            &cols,
            &[Op::AddColumn("id".into(), Value::Null)],
        );
        assert_eq!(dup, Err(EditError::DuplicateColumn("id".into())));
        assert!(dup.unwrap_err().to_string().contains("two columns named"));
        // Renaming the old column away frees its name; dropping it does too.
        check(
            Kind::Insert,
            &cols,
            &[
                Op::RenameColumn(1, "old_id".into()),
                Op::AddColumn("id".into(), Value::Null),
            ],
        )
        .unwrap();
        check(
            Kind::Insert,
            &cols,
            &[Op::DropColumn(1), Op::AddColumn("id".into(), Value::Null)],
        )
        .unwrap();
        assert_eq!(
            check(
                Kind::Truncate,
                &[],
                &[Op::AddColumn("s".into(), Value::Null)]
            ),
            Err(EditError::AddToTruncate("s".into()))
        );
    }

    #[test]
    fn images_that_do_not_match_the_columns_do_not_panic() {
        // A row image longer than the column list (input the host never builds from the
        // binlog, but a hand-written test event can hold): removals and additions stay in
        // bounds, and an added column goes to the images the kind has.
        let mut r = row();
        r.after.push(Value::Int(99));
        assert!(apply(
            &mut r,
            &mut [Op::DropColumn(0), Op::AddColumn("s".into(), Value::Null)]
        ));
        assert_eq!(r.columns, ["id", "email", "s"]);
        assert_eq!(r.after.len(), 4);
        let mut r = row();
        r.before.clear();
        r.after.clear();
        // An "insert" whose after image is empty still gets the value where the kind says.
        r.after.push(Value::Int(1));
        assert!(apply(
            &mut r,
            &mut [Op::AddColumn("s".into(), Value::Int(5))]
        ));
        assert_eq!(r.after, [Value::Int(1), Value::Int(5)]);
        assert!(r.before.is_empty());
    }

    #[test]
    fn a_drop_leaves_the_event_alone() {
        let mut r = row();
        assert!(!apply(
            &mut r,
            &mut [Op::SetAfter(0, Value::Null), Op::Drop]
        ));
        assert_eq!(r, row());
    }
}
