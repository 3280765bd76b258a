//! The file a ROTATE event names, including the stream's opening one.
//!
//! Design note: a replica stream opens with a fake ROTATE (log_pos 0) that names the file the
//! server starts from. It comes before any FORMAT_DESCRIPTION, so `mysql_common` cannot know
//! whether events carry a CRC32 and leaves the checksum in the event's data: the name then
//! ends with 4 bytes of checksum. Where the stream was asked for by file name the requested
//! name stands for it; where the server chose the file (a GTID dump) the name is read here,
//! and the last 4 bytes are dropped when, and only when, they are the CRC32 of the event.

use mysql_common::binlog::events::Event;

/// The file a ROTATE names, without a trailing checksum.
pub(crate) fn rotate_file(event: &Event) -> String {
    let h = event.header();
    let data = event.data();
    let name = data.get(8..).unwrap_or_default();
    let mut header = Vec::with_capacity(19);
    header.extend_from_slice(&h.timestamp().to_le_bytes());
    header.push(h.event_type_raw());
    header.extend_from_slice(&h.server_id().to_le_bytes());
    header.extend_from_slice(&h.event_size().to_le_bytes());
    header.extend_from_slice(&h.log_pos().to_le_bytes());
    header.extend_from_slice(&h.flags_raw().to_le_bytes());
    let name = match data.len().checked_sub(4) {
        Some(cut) if cut >= 8 => {
            let (body, sum) = data.split_at(cut);
            let sum = u32::from_le_bytes([sum[0], sum[1], sum[2], sum[3]]);
            let mut crc = crc32fast::Hasher::new();
            crc.update(&header);
            crc.update(body);
            if crc.finalize() == sum {
                &body[8..]
            } else {
                name
            }
        }
        _ => name,
    };
    String::from_utf8_lossy(name).into_owned()
}

#[cfg(test)]
mod tests {
    use mysql_common::binlog::consts::BinlogVersion;
    use mysql_common::binlog::events::{Event, FormatDescriptionEvent};

    use crate::source::processor::{Processor, TableFilter};
    use crate::state::BinlogPosition;

    /// The opening fake ROTATE of a dump from a server with binlog_checksum=CRC32 (as MariaDB
    /// 10.11 sent it), as `mysql_common` hands it over: its data ends with the CRC32.
    fn opening_rotate() -> Event {
        let body: [u8; 28] = [
            4, 0, 0, 0, 0, 0, 0, 0, 109, 121, 115, 113, 108, 45, 98, 105, 110, 46, 48, 48, 48, 48,
            48, 49, 31, 14, 172, 104,
        ];
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&0u32.to_le_bytes()); // timestamp
        bytes.push(4); // ROTATE
        bytes.extend_from_slice(&1u32.to_le_bytes()); // server_id
        bytes.extend_from_slice(&(19 + body.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes()); // log_pos: a fake event
        bytes.extend_from_slice(&0x20u16.to_le_bytes()); // LOG_EVENT_ARTIFICIAL_F
        bytes.extend_from_slice(&body);
        let fde = FormatDescriptionEvent::new(BinlogVersion::Version4);
        Event::read(&fde, &bytes[..]).unwrap()
    }

    #[test]
    fn a_gtid_dumps_file_is_the_one_the_server_names() {
        let start = BinlogPosition {
            file: "requested.000009".into(),
            pos: 4,
            gtid: None,
            timestamp: 0,
        };
        // Asked by position: the requested file stands for the opening ROTATE's.
        let mut p = Processor::new(TableFilter::all(), &start, 10);
        p.handle(&opening_rotate()).unwrap();
        assert_eq!(p.current_file(), "requested.000009");
        // Asked by GTID set: the server chose the file, without its checksum bytes.
        let mut p = Processor::new(TableFilter::all(), &start, 10).with_file_from_stream();
        p.handle(&opening_rotate()).unwrap();
        assert_eq!(p.current_file(), "mysql-bin.000001");
    }
}
