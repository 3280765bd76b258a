//! GTIDs: MariaDB's raw GTID events, and the executed-GTID state a position records.
//!
//! Design note: `mysql_common` does not parse MariaDB's GTID (162), GTID_LIST (163) and
//! BINLOG_CHECKPOINT (161) events (`read_data()` returns `None`), so their small fixed layouts
//! are read here. MariaDB GTIDs look like `domain-server-seq` and the executed state is the
//! last GTID per domain. MySQL GTIDs look like `uuid:gno` (`uuid:tag:gno` since 8.3) and the
//! executed state is a set of intervals ([`MysqlGtidSet`], in `mysql`).

use std::collections::BTreeMap;
use std::fmt;

mod mysql;

pub(crate) use mysql::{format_gtid, MysqlGtidSet};

/// One MariaDB GTID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MariaGtid {
    pub domain: u32,
    pub server: u32,
    pub seq: u64,
}

impl fmt::Display for MariaGtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server, self.seq)
    }
}

/// The body of a MariaDB GTID event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MariaGtidEvent {
    pub gtid: MariaGtid,
    /// FL_STANDALONE: the event group has no terminating XID/COMMIT (a DDL statement).
    pub standalone: bool,
    /// FL_PREPARED_XA: the group is an XA transaction's work up to its XA PREPARE, and this is
    /// its id as `XA COMMIT` writes it (`X'..',X'..',format`). MariaDB writes no `XA START`
    /// query: the GTID event stands for it.
    pub xa: Option<String>,
}

/// Parses a MariaDB GTID event body: seq_no u64, domain_id u32, flags2 u8, … (little-endian).
pub(crate) fn parse_mariadb_gtid(data: &[u8], server_id: u32) -> Option<MariaGtidEvent> {
    let seq = u64::from_le_bytes(data.get(0..8)?.try_into().ok()?);
    let domain = u32::from_le_bytes(data.get(8..12)?.try_into().ok()?);
    let flags = *data.get(12)?;
    let xa = if flags & 0x40 != 0 {
        // After flags2: commit_id (8) when FL_GROUP_COMMIT_ID, then formatID (4), gtrid and
        // bqual lengths (1 each), then their bytes.
        let at = 13 + if flags & 0x02 != 0 { 8 } else { 0 };
        let format = i32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?);
        let (g, b) = (
            usize::from(*data.get(at + 4)?),
            usize::from(*data.get(at + 5)?),
        );
        let ids = data.get(at + 6..at + 6 + g + b)?;
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02X}")).collect::<String>();
        Some(format!(
            "X'{}',X'{}',{format}",
            hex(&ids[..g]),
            hex(&ids[g..])
        ))
    } else {
        None
    };
    Some(MariaGtidEvent {
        xa,
        gtid: MariaGtid {
            domain,
            server: server_id,
            seq,
        },
        standalone: flags & 1 != 0,
    })
}

/// Parses a MariaDB GTID_LIST event body: count (low 28 bits), then (domain, server, seq) each.
pub(crate) fn parse_mariadb_gtid_list(data: &[u8]) -> Option<Vec<MariaGtid>> {
    let count = (u32::from_le_bytes(data.get(0..4)?.try_into().ok()?) & 0x0FFF_FFFF) as usize;
    let mut out = Vec::with_capacity(count.min(1024));
    for i in 0..count {
        let b = data.get(4 + i * 16..4 + (i + 1) * 16)?;
        out.push(MariaGtid {
            domain: u32::from_le_bytes(b[0..4].try_into().ok()?),
            server: u32::from_le_bytes(b[4..8].try_into().ok()?),
            seq: u64::from_le_bytes(b[8..16].try_into().ok()?),
        });
    }
    Some(out)
}

/// MariaDB's executed state: the latest GTID of each replication domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MariaGtidState {
    domains: BTreeMap<u32, MariaGtid>,
}

impl MariaGtidState {
    /// Parses `0-1-42,1-1-7` (the form of `@@gtid_binlog_pos` and of the position file).
    pub(crate) fn parse(s: &str) -> Option<Self> {
        let mut state = MariaGtidState::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut it = part.splitn(3, '-');
            let gtid = MariaGtid {
                domain: it.next()?.parse().ok()?,
                server: it.next()?.parse().ok()?,
                seq: it.next()?.parse().ok()?,
            };
            state.observe(gtid);
        }
        Some(state)
    }

    /// Records a GTID; sequence numbers only move forward within a domain.
    pub(crate) fn observe(&mut self, gtid: MariaGtid) {
        match self.domains.get(&gtid.domain) {
            Some(old) if old.seq >= gtid.seq => {}
            _ => {
                self.domains.insert(gtid.domain, gtid);
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }

    /// The servers that wrote the last GTID of each domain.
    pub(crate) fn servers(&self) -> impl Iterator<Item = u32> + '_ {
        self.domains.values().map(|g| g.server)
    }
}

impl fmt::Display for MariaGtidState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, g) in self.domains.values().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{g}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trip_and_monotonic() {
        let mut s = MariaGtidState::parse("0-1-42,1-2-7").unwrap();
        s.observe(MariaGtid {
            domain: 0,
            server: 1,
            seq: 40,
        });
        s.observe(MariaGtid {
            domain: 1,
            server: 3,
            seq: 8,
        });
        assert_eq!(s.to_string(), "0-1-42,1-3-8");
        assert!(MariaGtidState::parse("x-1").is_none());
    }

    #[test]
    fn gtid_event_layout() {
        let mut data = 5u64.to_le_bytes().to_vec();
        data.extend_from_slice(&3u32.to_le_bytes());
        data.push(1);
        let ev = parse_mariadb_gtid(&data, 9).unwrap();
        assert_eq!(ev.gtid.to_string(), "3-9-5");
        assert!(ev.standalone);
    }
}
