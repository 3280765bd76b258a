//! The epoch's window check: no XA transaction prepared before the snapshot's point may
//! finish after it (`docs/SNAPSHOT.md` §7, finding 12).
//!
//! Design note: such a transaction's rows are in the binlog before the point, so the stream
//! from the point never reads them, and they are invisible in the read view. `XA RECOVER`
//! inside the epoch catches one still prepared; this check catches one that finished between
//! the point and that `XA RECOVER`. It streams the window (point, head] through a processor
//! configured as the pipeline's, which notes every `XA COMMIT`/`XA ROLLBACK` whose `XA START`
//! it did not read. The window is the few transactions committed while the epoch opened.

use std::time::Duration;

use futures_util::StreamExt;

use super::SnapshotError;
use crate::config::MysqlConfig;
use crate::source::binlog::{self, BatchLimits, Driver, SourceError};
use crate::source::TableFilter;
use crate::state::BinlogPosition;

/// How long the window's stream may stay silent.
const SILENCE: Duration = Duration::from_secs(15);

/// The xid of an XA transaction that began before `from` and finished in (`from`, `to`], if
/// any.
pub(crate) async fn xa_finished_in_window(
    cfg: &MysqlConfig,
    filter: TableFilter,
    from: &BinlogPosition,
    to: &BinlogPosition,
) -> Result<Option<String>, SnapshotError> {
    if binlog::reached(&from.file, from.pos, to) {
        return Ok(None);
    }
    let mut stream = binlog::open_replica_stream(cfg, from, binlog::Request::AtPosition)
        .await?
        .stream;
    let limits = BatchLimits {
        rows: 1024,
        bytes: 8 << 20,
    };
    let mut driver = Driver::new(cfg, filter, from, limits).await?;
    driver.watch_xa();
    let mut last_end = from.pos;
    let found = loop {
        if let Some(xid) = driver.processor().foreign_xa() {
            break Some(xid.to_owned());
        }
        if !driver.processor().in_transaction()
            && binlog::reached(driver.processor().current_file(), last_end, to)
        {
            break None;
        }
        let event = match tokio::time::timeout(SILENCE, stream.next()).await {
            Err(_) => return Err(SourceError::Silent(SILENCE).into()),
            Ok(None) => return Err(SourceError::Closed.into()),
            Ok(Some(Err(e))) => return Err(SourceError::Stream(e).into()),
            Ok(Some(Ok(ev))) => ev,
        };
        last_end = binlog::event_end(&event, last_end);
        // The rows are not published: only the XA statements matter here.
        let _ = driver.feed(&event).await?;
    };
    drop(stream);
    driver.close().await;
    Ok(found)
}
