//! Exactly-once publishing without broker transactions: what a partition already holds is
//! read back at start, and the catch-up skips it.
//!
//! Design note (the argument, in full in `docs/EXACTLY_ONCE.md`):
//! - **Identity.** Every message carries its source identity in headers: `sluice.file`,
//!   `sluice.pos` (its transaction's start), `sluice.row` (its row in the transaction),
//!   `sluice.part` (its place among the outputs a transform made of one row, when not the
//!   first) and `sluice.snapshot` (a snapshot row, which orders before the transaction that
//!   starts at its point). [`Mark`] orders them: binlog file by its numeric suffix, then
//!   position, then snapshot rows first, then row, then part. Sluice publishes to every
//!   partition in increasing identity order (transforms are deterministic: the sandbox has no
//!   clock and no randomness, so a replay splits and routes the same way).
//! - **No gaps.** The idempotent producer with `enable.gapless.guarantee` writes each
//!   partition as a prefix of what Sluice sent it: a failure that could leave a gap stops the
//!   producer instead. So the last record of a partition says that everything Sluice sent it
//!   before that record is there, and nothing after it.
//! - **Catch-up.** A life of the stages starts from a position at or before everything that
//!   some partition may lack (the saved checkpoint). [`Catchup`] holds each partition's last
//!   identity ([`Mark`]) and drops every event at or below the mark of the partition it goes
//!   to; once the stream passes the highest mark, checking stops.
//! - **Placement.** To know an event's partition before it is sent, Sluice places records
//!   itself ([`partition_for`]: CRC-32 of the key modulo the partition count, which is what
//!   librdkafka's default `consistent_random` partitioner does for a non-empty key).
//! - **Stateless recovery.** Every message also carries `sluice.checkpoint`: the position up to
//!   which every earlier event was acknowledged on every partition when it was sent
//!   ([`Watermark`]). Any such value is a safe place to resume, so an empty state directory
//!   resumes from the highest one found (`state.recover = "kafka"`).

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rdkafka::message::{BorrowedMessage, Headers, Message};

use crate::event::SourcePosition;
use crate::state::BinlogPosition;

/// Header names of the identity.
pub(crate) const FILE: &str = "sluice.file";
pub(crate) const POS: &str = "sluice.pos";
pub(crate) const ROW: &str = "sluice.row";
pub(crate) const PART: &str = "sluice.part";
pub(crate) const SNAPSHOT: &str = "sluice.snapshot";
pub(crate) const GTID: &str = "sluice.gtid";
pub(crate) const CHECKPOINT: &str = "sluice.checkpoint";
pub(crate) const SNAPSHOT_AFTER: &str = "sluice.snapshot.after";
/// MySQL, in exactly-once mode: the `@@server_uuid` whose binlog `sluice.file`/`sluice.pos`
/// are offsets of (a promoted replica has other files and offsets for the same transactions).
pub(crate) const SERVER: &str = "sluice.server";

/// The identity of one published message, totally ordered within one server's binlog history,
/// and across servers (a failover to a replica) by its MariaDB GTID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mark {
    pub(crate) file: Arc<str>,
    pub(crate) pos: u64,
    pub(crate) snapshot: bool,
    pub(crate) row: u32,
    pub(crate) part: u32,
    /// The transaction's MariaDB GTID (domain, sequence number), when it has one. The same
    /// transaction has other file positions on a replica, but the same GTID.
    pub(crate) gtid: Option<(u32, u64)>,
    /// Read back only: the MySQL server whose binlog the file and offset are of
    /// (`sluice.server`), where the record names one. Not part of the order.
    pub(crate) server: Option<Arc<str>>,
}

/// `domain-server-seq` (one MariaDB GTID) as (domain, seq); `None` for anything else (a MySQL
/// GTID, or a GTID set such as a snapshot point's).
fn maria_gtid(g: &str) -> Option<(u32, u64)> {
    let mut it = g.splitn(3, '-');
    let domain = it.next()?.parse().ok()?;
    let _server: u32 = it.next()?.parse().ok()?;
    let seq = it.next()?.parse().ok()?;
    Some((domain, seq))
}

impl Mark {
    /// The identity of output `part` of the event at `p`.
    pub(crate) fn of(p: &SourcePosition, part: u32) -> Mark {
        Mark {
            file: p.file.clone(),
            pos: p.pos,
            snapshot: p.snapshot,
            row: p.row,
            part,
            gtid: p.gtid.as_deref().and_then(maria_gtid),
            server: None,
        }
    }

    /// Reads the identity headers of a record; `None` when it has none (not Sluice's).
    pub(crate) fn from_headers(h: &impl Headers) -> Option<Mark> {
        let (mut file, mut pos, mut row, mut part, mut snapshot) = (None, None, None, 0, false);
        let (mut gtid, mut server) = (None, None);
        for i in 0..h.count() {
            let hd = h.get(i);
            let v = hd.value.and_then(|v| std::str::from_utf8(v).ok());
            match hd.key {
                FILE => file = v.map(Arc::<str>::from),
                POS => pos = v.and_then(|v| v.parse().ok()),
                ROW => row = v.and_then(|v| v.parse().ok()),
                PART => part = v.and_then(|v| v.parse().ok()).unwrap_or(0),
                SNAPSHOT => snapshot = v == Some("1"),
                GTID => gtid = v.and_then(maria_gtid),
                SERVER => server = v.map(Arc::<str>::from),
                _ => {}
            }
        }
        Some(Mark {
            file: file?,
            pos: pos?,
            row: row?,
            part,
            snapshot,
            gtid,
            server,
        })
    }

    /// The record's mark, if it has one.
    pub(crate) fn of_message(m: &BorrowedMessage<'_>) -> Option<Mark> {
        m.headers().and_then(Mark::from_headers)
    }
}

/// A binlog file name's sequence number (`mysql-bin.000123` → 123), which orders files even
/// past the six digits the server pads to.
fn file_seq(name: &str) -> u64 {
    name.rsplit_once('.')
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(0)
}

impl Ord for Mark {
    /// Two events of MariaDB transactions in one GTID domain compare by sequence number (a
    /// domain's numbers grow in binlog order under `gtid_strict_mode`, on the primary and on
    /// its replicas alike); any other pair by binlog file number and position. Then snapshot
    /// rows before the transaction at their point, row, part.
    fn cmp(&self, other: &Self) -> Ordering {
        if let (Some((d1, s1)), Some((d2, s2)), false, false) =
            (self.gtid, other.gtid, self.snapshot, other.snapshot)
        {
            if d1 == d2 {
                return s1
                    .cmp(&s2)
                    .then(self.row.cmp(&other.row))
                    .then(self.part.cmp(&other.part));
            }
        }
        file_seq(&self.file)
            .cmp(&file_seq(&other.file))
            .then_with(|| self.file.cmp(&other.file))
            .then(self.pos.cmp(&other.pos))
            // A snapshot row read at a point comes before the transaction at that point.
            .then(other.snapshot.cmp(&self.snapshot))
            .then(self.row.cmp(&other.row))
            .then(self.part.cmp(&other.part))
    }
}

impl PartialOrd for Mark {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The partition Sluice places a record with `key` in, among `n`: librdkafka's
/// `consistent_random` (its default) for a non-empty key, CRC-32 modulo `n`.
pub(crate) fn partition_for(key: &[u8], n: i32) -> i32 {
    if n <= 1 {
        return 0;
    }
    (crc32fast::hash(key) % n as u32) as i32
}

/// Numbers the outputs of one source row: a transform may split a row into several events,
/// which share its position and follow each other in the batch.
/// The outputs of one row are copies of its event, so they share its file's `Arc`: the
/// pointer comparison usually decides without comparing the names.
#[derive(Default)]
pub(crate) struct Parts {
    last: Option<(Arc<str>, u64, u32, bool)>,
    part: u32,
}

impl Parts {
    /// The part number of the next event, at `p`.
    pub(crate) fn next(&mut self, p: &SourcePosition) -> u32 {
        match &self.last {
            Some((f, pos, row, snap))
                if *pos == p.pos
                    && *row == p.row
                    && *snap == p.snapshot
                    && (Arc::ptr_eq(f, &p.file) || **f == *p.file) =>
            {
                self.part += 1;
            }
            _ => {
                self.last = Some((p.file.clone(), p.pos, p.row, p.snapshot));
                self.part = 0;
            }
        }
        self.part
    }
}

/// What the partitions held at start: each one's last [`Mark`]. The sink asks it, event by
/// event, whether the destination already has the event, until the stream passes the highest
/// mark.
#[derive(Debug, Default)]
pub(crate) struct Catchup {
    marks: HashMap<(String, i32), Mark>,
    ceiling: Option<Mark>,
}

impl Catchup {
    pub(crate) fn new(marks: HashMap<(String, i32), Mark>) -> Catchup {
        let ceiling = marks.values().max().cloned();
        Catchup { marks, ceiling }
    }

    /// Whether nothing is left to skip from `id` on (the stream passed every mark).
    pub(crate) fn passed(&self, id: &Mark) -> bool {
        self.ceiling.as_ref().is_none_or(|c| id > c)
    }

    /// Whether partition `partition` of `topic` already holds the event `id`.
    pub(crate) fn holds(&self, topic: &str, partition: i32, id: &Mark) -> bool {
        // A lookup without allocating the key: the map is small (the topics' partitions).
        self.marks
            .iter()
            .any(|((t, p), m)| *p == partition && t == topic && id <= m)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ceiling.is_none()
    }
}

/// The position up to which every event sent was acknowledged on every partition, shared by
/// the checkpointer (which moves it as acknowledgements arrive) and the sink (which writes it
/// into every message as `sluice.checkpoint`). While a snapshot runs it is unset: a snapshot
/// cannot be resumed from Kafka alone, so recovery must not mistake its catch-up for streaming.
#[derive(Clone, Default)]
pub(crate) struct Watermark(Arc<Mutex<Option<Arc<[u8]>>>>);

impl Watermark {
    /// Starting at `p` (a saved checkpoint), or unset (a snapshot is running).
    pub(crate) fn starting_at(p: Option<&BinlogPosition>) -> Watermark {
        let w = Watermark::default();
        if let Some(p) = p {
            w.set(p);
        }
        w
    }

    pub(crate) fn set(&self, p: &BinlogPosition) {
        let value: Arc<[u8]> = Arc::from(render(p).into_bytes());
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(value);
    }

    /// Whether a position is set (streaming, not a snapshot).
    pub(crate) fn is_set(&self) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    pub(crate) fn get(&self) -> Option<Arc<[u8]>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// `sluice.checkpoint`'s value: `file:pos`, then ` gtid` where there is a GTID set.
pub(crate) fn render(p: &BinlogPosition) -> String {
    match &p.gtid {
        Some(g) => format!("{}:{} {}", p.file, p.pos, g.replace(['\n', ' '], "")),
        None => format!("{}:{}", p.file, p.pos),
    }
}

/// Parses [`render`]'s form.
pub(crate) fn parse(v: &str) -> Option<BinlogPosition> {
    let (at, gtid) = match v.split_once(' ') {
        Some((at, g)) => (at, Some(g.to_owned()).filter(|g| !g.is_empty())),
        None => (v, None),
    };
    let (file, pos) = at.rsplit_once(':')?;
    let pos: u64 = pos.parse().ok()?;
    if file.is_empty() || pos < 4 {
        return None;
    }
    Some(BinlogPosition {
        file: file.to_owned(),
        pos,
        gtid,
        timestamp: 0,
    })
}

/// Where a snapshot stood once a partition's last record was published, from its
/// `sluice.snapshot.after` header: `{snapshot id}/{table index}/{row ordinal}/{key cursor}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SnapshotAfter {
    pub(crate) id: String,
    pub(crate) table: usize,
    /// The row's ordinal within its table: rows 0..=ordinal of the table are published.
    pub(crate) ordinal: u64,
    /// The key cursor, in the snapshot file's JSON form.
    pub(crate) cursor: serde_json::Value,
    /// The same, as the header spells it.
    pub(crate) cursor_text: String,
    /// On a record that is not that row (it carries the partition's latest), when the
    /// partition holds only the row's outputs up to this one (`{ordinal}.{part}`): a life that
    /// found the row partly published carries that on.
    pub(crate) part: Option<u32>,
}

impl SnapshotAfter {
    pub(crate) fn parse(v: &str) -> Option<SnapshotAfter> {
        let h = AfterHeader::split(v)?;
        Some(SnapshotAfter {
            id: h.id.to_owned(),
            table: h.table,
            ordinal: h.ordinal,
            cursor: serde_json::from_str(h.cursor).ok()?,
            cursor_text: h.cursor.to_owned(),
            part: h.part,
        })
    }

    /// The header value that carries this row with the outputs held up to `part`.
    fn with_part(&self, part: u32) -> String {
        format!(
            "{}/{}/{}.{part}/{}",
            self.id, self.table, self.ordinal, self.cursor_text
        )
    }
}

/// The fields of a `sluice.snapshot.after` value, borrowed: the sink reads a row's own header
/// per output while a resumed snapshot runs, without parsing its cursor.
struct AfterHeader<'a> {
    id: &'a str,
    table: usize,
    ordinal: u64,
    part: Option<u32>,
    cursor: &'a str,
}

impl<'a> AfterHeader<'a> {
    /// `{id}/{table}/{ordinal}[.{part}]/{cursor}`.
    fn split(v: &'a str) -> Option<AfterHeader<'a>> {
        let mut it = v.splitn(4, '/');
        let (id, table, ordinal, cursor) = (it.next()?, it.next()?, it.next()?, it.next()?);
        let (ordinal, part) = match ordinal.split_once('.') {
            Some((o, p)) => (o, Some(p.parse().ok()?)),
            None => (ordinal, None),
        };
        Some(AfterHeader {
            id,
            table: table.parse().ok()?,
            ordinal: ordinal.parse().ok()?,
            part,
            cursor,
        })
    }
}

/// Where each partition's last row of a snapshot was, read back at start: a resumed snapshot
/// reads rows again from its saved key, and a partition skips those it holds (see
/// [`crate::event::HeldBounds`]).
#[derive(Debug, Default)]
pub(crate) struct SnapshotSeeds(HashMap<(String, i32), Seed>);

#[derive(Debug)]
struct Seed {
    after: SnapshotAfter,
    /// The last output part of that row the partition holds: all of them (`u32::MAX`) when a
    /// later record followed it.
    part: u32,
}

impl SnapshotSeeds {
    pub(crate) fn new(
        found: &HashMap<(String, i32), Arc<str>>,
        marks: &HashMap<(String, i32), Mark>,
    ) -> SnapshotSeeds {
        let seeds = found
            .iter()
            .filter_map(|(k, v)| {
                let after = SnapshotAfter::parse(v)?;
                let part = match marks.get(k) {
                    Some(m) if m.snapshot && u64::from(m.row) == after.ordinal => m.part,
                    _ => after.part.unwrap_or(u32::MAX),
                };
                Some((k.clone(), Seed { after, part }))
            })
            .collect();
        SnapshotSeeds(seeds)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The `sluice.snapshot.after` each partition carries on at start: the value read back,
    /// with the held part where the partition holds its row only in part (so that a later
    /// crash still knows).
    pub(crate) fn carried(
        &self,
        found: &HashMap<(String, i32), Arc<str>>,
    ) -> HashMap<(String, i32), Arc<str>> {
        let mut out = found.clone();
        for (k, seed) in &self.0 {
            if seed.part != u32::MAX {
                out.insert(
                    k.clone(),
                    Arc::from(seed.after.with_part(seed.part).as_str()),
                );
            }
        }
        out
    }

    /// Whether partition `partition` of `topic` holds output `part` of the snapshot row at
    /// `p` (which carries its own `sluice.snapshot.after` in `cursor`): the row is of the
    /// snapshot the partition's last row is of, and of an earlier table, or of the same table
    /// at or before that row's key (by the bounds the read counted).
    pub(crate) fn holds(&self, topic: &str, partition: i32, p: &SourcePosition, part: u32) -> bool {
        let Some(seed) = self
            .0
            .iter()
            .find(|((t, q), _)| *q == partition && t == topic)
            .map(|(_, s)| s)
        else {
            return false;
        };
        let Some(AfterHeader {
            id,
            table,
            ordinal,
            cursor: text,
            ..
        }) = p.cursor.as_deref().and_then(AfterHeader::split)
        else {
            return false;
        };
        if id != seed.after.id {
            return false;
        }
        // The snapshot reader says which rows may be held (never those of a table it reads
        // again from the start).
        let Some(held) = p
            .held
            .as_ref()
            .filter(|h| h.snapshot == id && h.table == table)
        else {
            return false;
        };
        match table.cmp(&seed.after.table) {
            Ordering::Less => true,
            Ordering::Greater => false,
            Ordering::Equal => {
                let bound = held
                    .bounds
                    .iter()
                    .find(|(c, _)| *c == seed.after.cursor_text)
                    .and_then(|(_, o)| *o);
                match bound {
                    None => false,
                    Some(b) if ordinal < b => true,
                    // The last row at or before the partition's key: that very row (its
                    // outputs up to the one the partition holds), or one before it.
                    Some(b) if ordinal == b => text != seed.after.cursor_text || part <= seed.part,
                    Some(_) => false,
                }
            }
        }
    }
}

/// The latest `sluice.snapshot.after` sent to each partition, carried on every record of the
/// partition while the snapshot runs, so that the partition's last record always says how far
/// the snapshot got there (also when the last record is a streamed change of a resumed
/// snapshot's catch-up).
#[derive(Debug, Default)]
pub(crate) struct SnapshotCursors(HashMap<String, Vec<Option<Arc<str>>>>);

impl SnapshotCursors {
    pub(crate) fn seeded(found: &HashMap<(String, i32), Arc<str>>) -> SnapshotCursors {
        let mut c = SnapshotCursors::default();
        for ((t, p), v) in found {
            c.set(t, *p, v.clone());
        }
        c
    }

    pub(crate) fn set(&mut self, topic: &str, partition: i32, v: Arc<str>) {
        let slots = match self.0.get_mut(topic) {
            Some(s) => s,
            None => self.0.entry(topic.to_owned()).or_default(),
        };
        let i = partition.max(0) as usize;
        if slots.len() <= i {
            slots.resize(i + 1, None);
        }
        slots[i] = Some(v);
    }

    pub(crate) fn get(&self, topic: &str, partition: i32) -> Option<&Arc<str>> {
        self.0.get(topic)?.get(partition.max(0) as usize)?.as_ref()
    }
}

/// Orders two checkpoints of one server's history.
pub(crate) fn later(a: &BinlogPosition, b: &BinlogPosition) -> bool {
    (file_seq(&a.file), a.file.as_str(), a.pos) > (file_seq(&b.file), b.file.as_str(), b.pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(file: &str, pos: u64, snapshot: bool, row: u32, part: u32) -> Mark {
        Mark {
            file: file.into(),
            pos,
            snapshot,
            row,
            part,
            gtid: None,
            server: None,
        }
    }

    #[test]
    fn one_domains_gtids_order_events_across_servers() {
        let on = |file: &str, pos, gtid: &str, row| Mark {
            gtid: maria_gtid(gtid),
            ..mark(file, pos, false, row, 0)
        };
        // The primary's file positions and a replica's differ; the GTIDs agree.
        let primary = on("mysql-bin.000009", 9000, "0-1-41", 3);
        let replica_next = on("mysql-bin.000002", 400, "0-1-42", 0);
        let replica_same = on("mysql-bin.000002", 120, "0-1-41", 3);
        assert!(primary < replica_next);
        assert_eq!(primary.cmp(&replica_same), Ordering::Equal);
        // Another domain, or no GTID: file order.
        let other = on("mysql-bin.000001", 4, "1-1-900", 0);
        assert!(other < primary);
        assert_eq!(maria_gtid("3a5c-uuid:17"), None);
        assert_eq!(maria_gtid("0-1-5,1-1-3"), None);
        assert_eq!(maria_gtid("0-1-5"), Some((0, 5)));
    }

    #[test]
    fn marks_follow_the_binlog() {
        let order = [
            mark("b.000009", 900, false, 5, 0),
            mark("b.000010", 4, true, 0, 0),
            mark("b.000010", 4, true, 7, 0),
            mark("b.000010", 4, false, 0, 0),
            mark("b.000010", 4, false, 0, 1),
            mark("b.000010", 4, false, 1, 0),
            mark("b.000010", 120, false, 0, 0),
            mark("b.1000000", 4, false, 0, 0),
        ];
        for w in order.windows(2) {
            assert!(w[0] < w[1], "{:?} < {:?}", w[0], w[1]);
        }
        assert_eq!(order[3].cmp(&order[3].clone()), Ordering::Equal);
    }

    #[test]
    fn the_catchup_skips_what_each_partition_holds() {
        let c = Catchup::new(HashMap::from([
            (("t".to_owned(), 0), mark("b.000001", 500, false, 2, 0)),
            (("t".to_owned(), 1), mark("b.000001", 300, false, 0, 0)),
            (("dlq".to_owned(), 0), mark("b.000001", 100, false, 0, 0)),
        ]));
        let at = |pos, row| mark("b.000001", pos, false, row, 0);
        assert!(c.holds("t", 0, &at(500, 2)));
        assert!(!c.holds("t", 0, &at(500, 3)));
        assert!(c.holds("t", 1, &at(300, 0)));
        assert!(!c.holds("t", 1, &at(400, 0)), "partition 1 lacks it");
        assert!(
            !c.holds("other", 0, &at(100, 0)),
            "a topic without a mark holds nothing"
        );
        assert!(!c.passed(&at(500, 2)));
        assert!(c.passed(&at(500, 3)));
        assert!(Catchup::default().passed(&at(4, 0)));
    }

    #[test]
    fn parts_number_the_outputs_of_one_row() {
        let file: Arc<str> = "b.000001".into();
        let p = |pos, row| SourcePosition {
            file: file.clone(),
            pos,
            row,
            gtid: None,
            snapshot: false,
            cursor: None,
            held: None,
        };
        let mut parts = Parts::default();
        let got: Vec<u32> = [p(4, 0), p(4, 0), p(4, 0), p(4, 1), p(9, 0), p(9, 0)]
            .iter()
            .map(|x| parts.next(x))
            .collect();
        assert_eq!(got, [0, 1, 2, 0, 0, 1]);
    }

    #[test]
    fn snapshot_cursors_parse_and_carry() {
        let a = SnapshotAfter::parse(r#"20261206T160000Z-1a2b/1/41/[{"b64":"YS9i"}]"#).unwrap();
        assert_eq!(
            (a.id.as_str(), a.table, a.ordinal),
            ("20261206T160000Z-1a2b", 1, 41)
        );
        assert_eq!(a.cursor, serde_json::json!([{"b64": "YS9i"}]));
        assert_eq!(SnapshotAfter::parse("x/1"), None);
        let mut c = SnapshotCursors::default();
        c.set("t", 2, Arc::from("v"));
        assert_eq!(c.get("t", 2).map(|v| &**v), Some("v"));
        assert_eq!(c.get("t", 0), None);
        assert_eq!(c.get("u", 2), None);
    }

    #[test]
    fn resumed_snapshot_rows_are_skipped_where_their_partition_holds_them() {
        use crate::event::HeldBounds;
        let id = "20261206T160000Z-1a2b";
        // Partition 0's last row: table 1, key 50, its first output (part 0); partition 1's:
        // table 2, key 7, followed by a streamed change; partition 2 holds no snapshot row.
        let found: HashMap<(String, i32), Arc<str>> = [
            (0, format!(r#"{id}/1/49/[{{"i":50}}]"#)),
            (1, format!(r#"{id}/2/6/[{{"i":7}}]"#)),
        ]
        .into_iter()
        .map(|(p, v)| (("t".to_owned(), p), Arc::from(v.as_str())))
        .collect();
        let mut marks = HashMap::new();
        marks.insert(("t".to_owned(), 0), mark("b.000001", 100, true, 49, 0));
        marks.insert(("t".to_owned(), 1), mark("b.000001", 900, false, 0, 0));
        let seeds = SnapshotSeeds::new(&found, &marks);
        // The resumed read of table 1 counted its rows up to key 50: the last is ordinal 45.
        let bounds = |table: usize| {
            Arc::new(HeldBounds {
                snapshot: id.to_owned(),
                table,
                bounds: match table {
                    1 => vec![(r#"[{"i":50}]"#.to_owned(), Some(45))],
                    _ => Vec::new(),
                },
                later_elsewhere: table < 2,
            })
        };
        let row = |table: usize, ordinal: u64, key: i64, held: bool| SourcePosition {
            file: Arc::from("b.000002"),
            pos: 4,
            row: ordinal as u32,
            gtid: None,
            snapshot: true,
            cursor: Some(Arc::from(
                format!(r#"{id}/{table}/{ordinal}/[{{"i":{key}}}]"#).as_str(),
            )),
            held: held.then(|| bounds(table)),
        };
        let holds = |p: i32, pos: &SourcePosition, part: u32| seeds.holds("t", p, pos, part);
        // Table 1 in partition 0: up to the bound, and the bound row's outputs up to part 0.
        assert!(holds(0, &row(1, 44, 48, true), 3));
        assert!(holds(0, &row(1, 45, 50, true), 0));
        assert!(!holds(0, &row(1, 45, 50, true), 1));
        // A row at the bound whose key is not the partition's (that row was deleted): held.
        assert!(holds(0, &row(1, 45, 49, true), 1));
        assert!(!holds(0, &row(1, 46, 51, true), 0));
        // Without bounds (a table read again from its start, say): nothing held.
        assert!(!holds(0, &row(1, 44, 48, false), 0));
        assert!(!holds(1, &row(0, 7, 7, false), 0));
        // Table 0 comes before partition 0's table: held; table 2 after it: not.
        assert!(holds(0, &row(0, 7, 7, true), 0));
        assert!(!holds(0, &row(2, 0, 1, true), 0));
        // Partition 1 holds all of tables 0 and 1; partition 2 nothing.
        assert!(holds(1, &row(1, 46, 51, true), 5));
        assert!(!holds(2, &row(0, 0, 1, true), 0));
        // Another snapshot's rows: never.
        let mut other = row(0, 0, 1, true);
        other.cursor = Some(Arc::from(r#"other/0/0/[{"i":1}]"#));
        assert!(!holds(1, &other, 0));
    }

    #[test]
    fn a_row_held_in_part_stays_so_across_another_crash() {
        let id = "20261206T160000Z-1a2b";
        let row = format!(r#"{id}/0/9/[{{"i":10}}]"#);
        let key = ("t".to_owned(), 0);
        // The partition's last record is output 0 of row 9 (of 3): it holds only that one.
        let found = HashMap::from([(key.clone(), Arc::<str>::from(row.as_str()))]);
        let marks = HashMap::from([(key.clone(), mark("b.000001", 100, true, 9, 0))]);
        let seeds = SnapshotSeeds::new(&found, &marks);
        let carried = seeds.carried(&found);
        let v = &carried[&key];
        assert_eq!(&**v, format!(r#"{id}/0/9.0/[{{"i":10}}]"#));
        // The next life sends a streamed record there, carrying that, and crashes: the part
        // is still known.
        let found = HashMap::from([(key.clone(), v.clone())]);
        let marks = HashMap::from([(key.clone(), mark("b.000001", 900, false, 0, 0))]);
        let again = SnapshotSeeds::new(&found, &marks);
        assert_eq!(again.0[&key].part, 0);
        assert_eq!(again.0[&key].after.ordinal, 9);
        // A row held whole carries its value unchanged.
        let marks = HashMap::from([(key.clone(), mark("b.000001", 900, false, 0, 0))]);
        let found = HashMap::from([(key.clone(), Arc::<str>::from(row.as_str()))]);
        let whole = SnapshotSeeds::new(&found, &marks);
        assert_eq!(whole.0[&key].part, u32::MAX);
        assert_eq!(&*whole.carried(&found)[&key], row);
    }

    #[test]
    fn checkpoints_round_trip() {
        for p in [
            BinlogPosition {
                file: "mysql-bin.000007".into(),
                pos: 33035565,
                gtid: Some("0-1-5,1-2-9".into()),
                timestamp: 0,
            },
            BinlogPosition {
                file: "binlog.000001".into(),
                pos: 4,
                gtid: None,
                timestamp: 0,
            },
        ] {
            assert_eq!(parse(&render(&p)), Some(p));
        }
        assert_eq!(parse("nonsense"), None);
        assert_eq!(parse("f:2"), None);
        let a = parse("b.000010:4").unwrap();
        let b = parse("b.000009:9000").unwrap();
        assert!(later(&a, &b) && !later(&b, &a));
    }

    #[test]
    fn placement_is_librdkafkas_consistent_partitioner() {
        // One partition needs no hash; otherwise CRC-32 (IEEE: "123456789" gives CBF43926).
        assert_eq!(partition_for(b"shop.orders", 1), 0);
        let p = partition_for(b"shop.orders", 12);
        assert!((0..12).contains(&p));
        assert_eq!(p, (crc32fast::hash(b"shop.orders") % 12) as i32);
        assert_eq!(
            partition_for(b"123456789", 1000),
            (0xCBF4_3926u32 % 1000) as i32
        );
    }
}
