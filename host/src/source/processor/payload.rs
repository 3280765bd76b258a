//! MySQL TRANSACTION_PAYLOAD: a compressed transaction whose inner events follow it.

use std::collections::VecDeque;

use mysql_common::binlog::events::Event;

use super::{ProcessError, Processor, Step};
use crate::source::compressed;

/// A MySQL TRANSACTION_PAYLOAD whose inner events are being read: the events still expected,
/// by type and size, as Sluice's own decompression found them.
pub(super) struct Payload {
    pub(super) start: u64,
    pub(super) end: u64,
    pub(super) expected: VecDeque<(u8, u32)>,
}

impl Processor {
    pub(super) fn payload(
        &mut self,
        event: &Event,
        start: u64,
        end: u64,
        timestamp: u32,
    ) -> Result<Step, ProcessError> {
        let err = |detail: String| ProcessError::Payload {
            file: self.file.to_string(),
            pos: start,
            detail,
        };
        if self.payload.is_some() {
            return Err(err(
                "it begins before the previous payload's events were all delivered".into(),
            ));
        }
        let header = compressed::payload_header(event.data()).map_err(err)?;
        let bytes = if header.algorithm == 255 {
            header.payload.to_vec()
        } else {
            compressed::unzstd(header.payload, header.uncompressed_size).map_err(err)?
        };
        let expected = compressed::inner_events(&bytes).map_err(err)?;
        self.payload = Some(Payload {
            start,
            end,
            expected: expected.into(),
        });
        self.payload_bytes = Some(bytes);
        if self.txn.is_none() {
            self.open_txn(start, None, false, timestamp);
        }
        Ok(Step::Continue)
    }
}
