//! MySQL's executed-GTID set (`uuid:1-5:7,uuid2:tag:1-3`): what a MySQL position records and
//! what `COM_BINLOG_DUMP_GTID` resumes from.
//!
//! Design note: MySQL numbers each source server's transactions (`uuid:gno`, and since 8.3
//! `uuid:tag:gno`), and a server's state is the set of every GTID it has executed, as
//! intervals per (uuid, tag). The set grows from the PREVIOUS_GTIDS event at the head of each
//! binlog file and from each transaction's GTID event. A replica that resumes by GTID
//! ("auto-position") sends that set and no file name: the server finds the first binlog file
//! that holds a transaction outside it and sends every such transaction. That works on any
//! server of the same replication topology, which is what makes a failover to a promoted
//! replica work. Pure data: no I/O here.

use std::collections::BTreeMap;
use std::fmt;

use mysql_common::binlog::events::{GtidEvent, PreviousGtidsEvent};
use mysql_common::packets::{GnoInterval, Sid, Tag};

/// (source uuid, tag): the unit GTID numbers count within.
type Source = ([u8; 16], Option<String>);

/// A set of MySQL GTIDs, as intervals per source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MysqlGtidSet {
    /// Sorted, disjoint, non-adjacent inclusive intervals per source.
    sets: BTreeMap<Source, Vec<(u64, u64)>>,
}

impl MysqlGtidSet {
    /// Parses MySQL's text form, as `@@gtid_executed` and `SHOW MASTER STATUS` print it:
    /// comma-separated `uuid[:interval|:tag]…`, where an interval is `n` or `n-m` and a tag
    /// applies to the intervals after it. Whitespace (the server wraps long sets) is ignored.
    /// `None` for anything else, a MariaDB GTID state among them.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        let mut set = MysqlGtidSet::default();
        for part in s.split(',').filter(|p| !p.is_empty()) {
            let mut it = part.split(':');
            let uuid = parse_uuid(it.next()?)?;
            let mut tag: Option<String> = None;
            // Whether the last element was an interval (a tag must be followed by one).
            let mut interval = false;
            for el in it {
                if el.starts_with(|c: char| c.is_ascii_digit()) {
                    let (a, b): (u64, u64) = match el.split_once('-') {
                        Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
                        None => {
                            let n = el.parse().ok()?;
                            (n, n)
                        }
                    };
                    // GTID numbers run from 1 to 2^63 - 1.
                    if a == 0 || b < a || b > i64::MAX as u64 {
                        return None;
                    }
                    set.add((uuid, tag.clone()), a, b);
                    interval = true;
                } else {
                    Tag::new(el).ok()?;
                    tag = Some(el.to_owned());
                    interval = false;
                }
            }
            if !interval {
                return None;
            }
        }
        Some(set)
    }

    /// The GTIDs a binlog file's PREVIOUS_GTIDS event lists (every transaction before it).
    pub(crate) fn from_previous(ev: &PreviousGtidsEvent<'_>) -> Self {
        let mut set = MysqlGtidSet::default();
        for sid in ev.sids() {
            let source = (sid.uuid(), sid.tag().map(|t| t.as_str().to_owned()));
            for i in sid.intervals() {
                // Intervals are [start, end) on the wire.
                if i.start() >= 1 && i.end() > i.start() {
                    set.add(source.clone(), i.start(), i.end() - 1);
                }
            }
        }
        set
    }

    /// Adds one transaction's GTID.
    pub(crate) fn observe(&mut self, g: &GtidEvent) {
        if g.gno() > 0 {
            let tag = g.tag().map(|t| t.as_str().to_owned());
            self.add((g.sid(), tag), g.gno(), g.gno());
        }
    }

    /// Adds every GTID of `other`.
    pub(crate) fn union(&mut self, other: &MysqlGtidSet) {
        for (source, intervals) in &other.sets {
            for &(a, b) in intervals {
                self.add(source.clone(), a, b);
            }
        }
    }

    /// Whether `uuid[:tag]:gno` is in the set.
    #[cfg(test)]
    pub(crate) fn contains(&self, uuid: [u8; 16], tag: Option<&str>, gno: u64) -> bool {
        self.sets
            .get(&(uuid, tag.map(str::to_owned)))
            .is_some_and(|v| v.iter().any(|&(a, b)| a <= gno && gno <= b))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }

    /// The set as `COM_BINLOG_DUMP_GTID` carries it (intervals `[start, end)`).
    pub(crate) fn to_sids(&self) -> Vec<Sid<'static>> {
        self.sets
            .iter()
            .map(|((uuid, tag), intervals)| {
                let sid = Sid::new(*uuid).with_intervals(
                    intervals
                        .iter()
                        .map(|&(a, b)| GnoInterval::new(a, b + 1))
                        .collect(),
                );
                match tag {
                    // Tags were validated on the way in.
                    Some(t) => sid.with_tag(Tag::new(t.clone()).expect("a validated tag")),
                    None => sid,
                }
            })
            .collect()
    }

    fn add(&mut self, source: Source, a: u64, b: u64) {
        let v = self.sets.entry(source).or_default();
        // The usual case: the next GTID of a source, right after its last interval.
        if let Some(last) = v.last_mut() {
            if a >= last.0 && a <= last.1.saturating_add(1) {
                last.1 = last.1.max(b);
                return;
            }
        }
        v.push((a, b));
        v.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(v.len());
        for &(a, b) in v.iter() {
            match merged.last_mut() {
                Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        *v = merged;
    }
}

/// A GTID event's GTID as the server prints it: `uuid:gno`, or `uuid:tag:gno`.
pub(crate) fn format_gtid(g: &GtidEvent) -> String {
    let uuid = format_uuid(&g.sid());
    match g.tag() {
        Some(tag) => format!("{uuid}:{}:{}", tag.as_str(), g.gno()),
        None => format!("{uuid}:{}", g.gno()),
    }
}

/// A GTID's source uuid as MySQL prints it: lowercase, dashed 8-4-4-4-12.
pub(crate) fn format_uuid(u: &[u8; 16]) -> String {
    let hex: String = u.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let dashes = s.char_indices().filter(|&(_, c)| c == '-').map(|(i, _)| i);
    if s.len() != 36 || !dashes.eq([8, 13, 18, 23]) {
        return None;
    }
    let hex: String = s.chars().filter(|&c| c != '-').collect();
    if !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl fmt::Display for MysqlGtidSet {
    /// MySQL's own form: one entry per uuid, its untagged intervals first, then each tag with
    /// its intervals (`uuid:1-5:7:tag:1-3`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut last_uuid: Option<[u8; 16]> = None;
        // BTreeMap order: by uuid, the untagged source (None) before the tagged ones.
        for ((uuid, tag), intervals) in &self.sets {
            if last_uuid != Some(*uuid) {
                if last_uuid.is_some() {
                    f.write_str(",")?;
                }
                f.write_str(&format_uuid(uuid))?;
                last_uuid = Some(*uuid);
            }
            if let Some(t) = tag {
                write!(f, ":{t}")?;
            }
            for &(a, b) in intervals {
                if a == b {
                    write!(f, ":{a}")?;
                } else {
                    write!(f, ":{a}-{b}")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U1: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    const U2: &str = "4a9be6b2-1a2b-11ef-8f3c-0242ac120002";

    #[test]
    fn parses_merges_and_prints_mysqls_form() {
        let text = format!("{U2}:1-3,\n{U1}:1-5:7:9-10:aa:1-2, {U1}:6");
        let set = MysqlGtidSet::parse(&text).unwrap();
        assert_eq!(set.to_string(), format!("{U1}:1-7:9-10:aa:1-2,{U2}:1-3"));
        // The printed form parses back to the same set.
        assert_eq!(MysqlGtidSet::parse(&set.to_string()).unwrap(), set);
        let u1 = parse_uuid(U1).unwrap();
        assert!(set.contains(u1, None, 7));
        assert!(!set.contains(u1, None, 8));
        assert!(set.contains(u1, Some("aa"), 2));
        assert!(!set.contains(u1, Some("aa"), 3));
    }

    #[test]
    fn observe_extends_and_fills_gaps() {
        let mut set = MysqlGtidSet::parse(&format!("{U1}:1-5:7")).unwrap();
        let u1 = parse_uuid(U1).unwrap();
        set.observe(&GtidEvent::new(u1, 6));
        set.observe(&GtidEvent::new(u1, 8));
        let tagged = GtidEvent::new_tagged(u1, Tag::new("t_1").unwrap(), 1);
        set.observe(&tagged);
        assert_eq!(set.to_string(), format!("{U1}:1-8:t_1:1"));
        assert_eq!(format_gtid(&tagged), format!("{U1}:t_1:1"));
        assert_eq!(format_gtid(&GtidEvent::new(u1, 6)), format!("{U1}:6"));
    }

    #[test]
    fn refuses_what_is_not_a_mysql_set() {
        for bad in [
            "0-1-42",
            "0-1-42,1-2-7",
            U1,
            &format!("{U1}:0"),
            &format!("{U1}:5-3"),
            &format!("{U1}:Bad:1"),
            &format!("{U1}:1-5:tag"),
            &format!("{U1}:1-9223372036854775808"),
            "3e11fa4-771ca-11e1-9e33-c80aa9429562:1",
            "nonsense:1",
        ] {
            assert!(MysqlGtidSet::parse(bad).is_none(), "{bad}");
        }
        assert!(MysqlGtidSet::parse("").unwrap().is_empty());
    }

    #[test]
    fn dump_request_carries_the_set() {
        use mysql_common::io::ParseBuf;
        use mysql_common::packets::ComBinlogDumpGtid;
        use mysql_common::proto::{MyDeserialize, MySerialize};

        // The request's wire form, read back by mysql_common's own parser, holds exactly the
        // set: intervals as [start, end), tags in the tagged (TSID) form.
        for text in [format!("{U1}:1-5:7,{U2}:1-3"), format!("{U1}:1-5:tg:1-2")] {
            let set = MysqlGtidSet::parse(&text).unwrap();
            let cmd = ComBinlogDumpGtid::new(42).with_sids(set.to_sids());
            let mut buf = Vec::new();
            cmd.serialize(&mut buf);
            let back = ComBinlogDumpGtid::deserialize((), &mut ParseBuf(&buf)).unwrap();
            let mut read = MysqlGtidSet::default();
            for sid in back.sids() {
                for i in sid.intervals() {
                    read.add(
                        (sid.uuid(), sid.tag().map(|t| t.as_str().to_owned())),
                        i.start(),
                        i.end() - 1,
                    );
                }
            }
            assert_eq!(read, set, "{text}");
        }
    }
}
