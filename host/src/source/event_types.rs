//! Binlog event type codes, by name: MySQL's (`binlog_event.h`, `Log_event_type`) and
//! MariaDB's own (160 and up, `log_event.h`).
//!
//! Design note: `mysql_common` names most of these in `EventType`, but not the MariaDB ones it
//! does not parse, nor the newer MySQL ones in every version; the source code matches on the raw
//! byte (`event_type_raw()`), so the names live here, in one place, as plain `u8` constants
//! usable in `match` patterns and ranges.
//!
//! The table is complete on purpose: some codes are matched only inside a range
//! (`WRITE_ROWS_V1..=DELETE_ROWS_V1`, the compressed rows events) or fall to the "unknown
//! event" error (`EXECUTE_LOAD_QUERY`), so they are named here but never used by name.
#![allow(dead_code)]

// MySQL (and the common part MariaDB shares).
pub(crate) const START_V3: u8 = 1;
pub(crate) const QUERY: u8 = 2;
pub(crate) const STOP: u8 = 3;
pub(crate) const ROTATE: u8 = 4;
pub(crate) const INTVAR: u8 = 5;
pub(crate) const RAND: u8 = 13;
pub(crate) const USER_VAR: u8 = 14;
pub(crate) const FORMAT_DESCRIPTION: u8 = 15;
pub(crate) const XID: u8 = 16;
pub(crate) const BEGIN_LOAD_QUERY: u8 = 17;
pub(crate) const EXECUTE_LOAD_QUERY: u8 = 18;
pub(crate) const TABLE_MAP: u8 = 19;
/// Rows events v1 (what MariaDB writes).
pub(crate) const WRITE_ROWS_V1: u8 = 23;
pub(crate) const UPDATE_ROWS_V1: u8 = 24;
pub(crate) const DELETE_ROWS_V1: u8 = 25;
pub(crate) const INCIDENT: u8 = 26;
pub(crate) const HEARTBEAT: u8 = 27;
pub(crate) const IGNORABLE: u8 = 28;
pub(crate) const ROWS_QUERY: u8 = 29;
/// Rows events v2 (what MySQL writes).
pub(crate) const WRITE_ROWS: u8 = 30;
pub(crate) const UPDATE_ROWS: u8 = 31;
pub(crate) const DELETE_ROWS: u8 = 32;
pub(crate) const GTID: u8 = 33;
pub(crate) const ANONYMOUS_GTID: u8 = 34;
pub(crate) const PREVIOUS_GTIDS: u8 = 35;
pub(crate) const TRANSACTION_CONTEXT: u8 = 36;
pub(crate) const VIEW_CHANGE: u8 = 37;
pub(crate) const XA_PREPARE: u8 = 38;
pub(crate) const PARTIAL_UPDATE_ROWS: u8 = 39;
pub(crate) const TRANSACTION_PAYLOAD: u8 = 40;
pub(crate) const HEARTBEAT_V2: u8 = 41;
pub(crate) const GTID_TAGGED: u8 = 42;

// MariaDB.
pub(crate) const MARIADB_ANNOTATE_ROWS: u8 = 160;
pub(crate) const MARIADB_BINLOG_CHECKPOINT: u8 = 161;
pub(crate) const MARIADB_GTID: u8 = 162;
pub(crate) const MARIADB_GTID_LIST: u8 = 163;
pub(crate) const MARIADB_START_ENCRYPTION: u8 = 164;
pub(crate) const MARIADB_QUERY_COMPRESSED: u8 = 165;
/// Compressed rows events, v1 (166–168) then v2 (169–171), each WRITE, UPDATE, DELETE.
pub(crate) const MARIADB_WRITE_ROWS_COMPRESSED_V1: u8 = 166;
pub(crate) const MARIADB_UPDATE_ROWS_COMPRESSED_V1: u8 = 167;
pub(crate) const MARIADB_DELETE_ROWS_COMPRESSED_V1: u8 = 168;
pub(crate) const MARIADB_WRITE_ROWS_COMPRESSED: u8 = 169;
pub(crate) const MARIADB_UPDATE_ROWS_COMPRESSED: u8 = 170;
pub(crate) const MARIADB_DELETE_ROWS_COMPRESSED: u8 = 171;

/// The header flag LOG_EVENT_IGNORABLE_F: a replica that does not know the event may skip it.
pub(crate) const FLAG_IGNORABLE: u16 = 0x0080;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_agree_with_mysql_common() {
        use mysql_common::binlog::consts::EventType as E;
        for (code, ty) in [
            (QUERY, E::QUERY_EVENT),
            (ROTATE, E::ROTATE_EVENT),
            (FORMAT_DESCRIPTION, E::FORMAT_DESCRIPTION_EVENT),
            (XID, E::XID_EVENT),
            (TABLE_MAP, E::TABLE_MAP_EVENT),
            (WRITE_ROWS_V1, E::WRITE_ROWS_EVENT_V1),
            (DELETE_ROWS_V1, E::DELETE_ROWS_EVENT_V1),
            (WRITE_ROWS, E::WRITE_ROWS_EVENT),
            (DELETE_ROWS, E::DELETE_ROWS_EVENT),
            (GTID, E::GTID_EVENT),
            (ANONYMOUS_GTID, E::ANONYMOUS_GTID_EVENT),
            (XA_PREPARE, E::XA_PREPARE_LOG_EVENT),
            (PARTIAL_UPDATE_ROWS, E::PARTIAL_UPDATE_ROWS_EVENT),
            (TRANSACTION_PAYLOAD, E::TRANSACTION_PAYLOAD_EVENT),
        ] {
            assert_eq!(code, ty as u8, "{ty:?}");
        }
    }
}
