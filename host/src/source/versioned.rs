//! System-versioned tables (MariaDB `WITH SYSTEM VERSIONING`), published as `SELECT *` shows
//! them.
//!
//! Design note: the server keeps history rows in the table itself and logs them. Every image
//! carries the period columns (`row_start`, `row_end` when declared implicitly, then INVISIBLE),
//! the binlog's key is `(id, row_end)`, a DELETE arrives as an update that closes `row_end`, and
//! an UPDATE as an update plus an insert of the old version. A row whose `row_end` is not the
//! maximum is history. So: an insert of history is dropped, an update whose after-image is
//! history is a delete of the current row, a change to history rows only (`DELETE HISTORY`) is
//! dropped, and implicit period columns leave the published image. The period-end column also
//! leaves the published key, which is the declared one. Which tables are versioned, and their
//! period columns, come from the catalog ([`super::objects`]); the binlog alone does not say.

use std::sync::Arc;

use crate::event::{Kind, TableMeta, Value};

/// A versioned table's period columns, as the catalog describes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Periods {
    pub start: String,
    pub end: String,
    /// Declared implicitly (`WITH SYSTEM VERSIONING` alone): the columns are INVISIBLE, so
    /// `SELECT *` does not show them and they are not published.
    pub hidden: bool,
}

/// Where the period columns sit in one TABLE_MAP's images, and the metadata to publish.
#[derive(Debug)]
pub(crate) struct Layout {
    end: usize,
    /// Image columns that are published, in order.
    keep: Vec<usize>,
    pub meta: Arc<TableMeta>,
}

impl Layout {
    /// `None` when the image has no columns of these names (then the caller stops).
    pub(crate) fn new(full: &TableMeta, periods: &Periods) -> Option<Layout> {
        let at = |n: &str| full.columns.iter().position(|c| c == n);
        let (start, end) = (at(&periods.start)?, at(&periods.end)?);
        let keep: Vec<usize> = (0..full.columns.len())
            .filter(|&i| !(periods.hidden && (i == start || i == end)))
            .collect();
        let primary_key = full
            .primary_key
            .iter()
            .filter(|&&k| k != end)
            .filter_map(|k| keep.iter().position(|i| i == k))
            .collect();
        let meta = TableMeta {
            schema: full.schema.clone(),
            table: full.table.clone(),
            columns: keep.iter().map(|&i| full.columns[i].clone()).collect(),
            primary_key,
        };
        Some(Layout {
            end,
            keep,
            meta: Arc::new(meta),
        })
    }

    /// Maps one logged change to what `SELECT *` saw change, or `None` when nothing visible
    /// changed. `before`/`after` are full images.
    pub(crate) fn map(
        &self,
        kind: Kind,
        before: Vec<Value>,
        after: Vec<Value>,
    ) -> Option<(Kind, Vec<Value>, Vec<Value>)> {
        let current = |img: &[Value]| img.get(self.end).is_some_and(is_open);
        let (kind, before, after) = match kind {
            Kind::Insert if current(&after) => (Kind::Insert, Vec::new(), after),
            Kind::Insert => return None,
            Kind::Update if !current(&before) => return None,
            Kind::Update if current(&after) => (Kind::Update, before, after),
            Kind::Update => (Kind::Delete, before, Vec::new()),
            Kind::Delete if current(&before) => (Kind::Delete, before, Vec::new()),
            Kind::Delete => return None,
            other => (other, before, after),
        };
        Some((kind, self.project(before), self.project(after)))
    }

    fn project(&self, img: Vec<Value>) -> Vec<Value> {
        if img.is_empty() || self.keep.len() == img.len() {
            return img;
        }
        let mut img: Vec<Option<Value>> = img.into_iter().map(Some).collect();
        self.keep
            .iter()
            .map(|&i| img.get_mut(i).and_then(Option::take).unwrap_or(Value::Null))
            .collect()
    }
}

/// Whether a period-end value is the open end (the maximum): TIMESTAMP(6) ends at
/// 2038-01-19 03:14:07.999999 (or 2106-02-07 06:28:15.999999 on servers with the wider range),
/// and transaction-precise tables end at the largest BIGINT UNSIGNED.
fn is_open(v: &Value) -> bool {
    match v {
        Value::Timestamp { secs, micros, .. } => {
            *micros == 999_999 && (*secs == i64::from(i32::MAX) || *secs == i64::from(u32::MAX))
        }
        Value::UInt(u) => *u == u64::MAX,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(secs: i64, micros: u32) -> Value {
        Value::Timestamp {
            secs,
            micros,
            fsp: 6,
        }
    }

    #[test]
    fn history_is_mapped_back_to_what_select_shows() {
        let full = TableMeta {
            schema: "s".into(),
            table: "t".into(),
            columns: vec![
                "id".into(),
                "v".into(),
                "row_start".into(),
                "row_end".into(),
            ],
            primary_key: vec![0, 3],
        };
        let periods = Periods {
            start: "row_start".into(),
            end: "row_end".into(),
            hidden: true,
        };
        let l = Layout::new(&full, &periods).expect("columns found");
        assert_eq!(l.meta.columns, ["id", "v"]);
        assert_eq!(l.meta.primary_key, [0]);
        let max = ts(i64::from(i32::MAX), 999_999);
        let row = |v, end: &Value| vec![Value::Int(1), Value::Int(v), ts(10, 0), end.clone()];
        let (k, _, a) = l.map(Kind::Insert, vec![], row(1, &max)).expect("current");
        assert_eq!((k, a), (Kind::Insert, vec![Value::Int(1), Value::Int(1)]));
        // An UPDATE's history insert is dropped; a DELETE's closing update is a delete.
        assert!(l.map(Kind::Insert, vec![], row(1, &ts(20, 5))).is_none());
        let (k, b, a) = l
            .map(Kind::Update, row(2, &max), row(2, &ts(30, 1)))
            .expect("visible");
        assert_eq!(k, Kind::Delete);
        assert_eq!(b, vec![Value::Int(1), Value::Int(2)]);
        assert!(a.is_empty());
        assert!(l.map(Kind::Delete, row(2, &ts(30, 1)), vec![]).is_none());
    }
}
