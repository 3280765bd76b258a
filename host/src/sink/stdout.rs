//! The embedded default sink: one JSON object per line on stdout, so `sluice run | jq` works.
//!
//! Logs go to stderr, so stdout carries nothing but events.

use tokio::io::{AsyncWriteExt, BufWriter, Stdout};

use super::{Ack, SinkError};
use crate::encode::{encode_value, ValueEncoder};
use crate::event::ChangeEvent;

pub(crate) struct StdoutSink {
    out: BufWriter<Stdout>,
    buf: Vec<u8>,
    encoder: ValueEncoder,
}

impl Default for StdoutSink {
    fn default() -> Self {
        StdoutSink {
            out: BufWriter::with_capacity(64 * 1024, tokio::io::stdout()),
            buf: Vec::with_capacity(64 * 1024),
            encoder: ValueEncoder::default(),
        }
    }
}

impl StdoutSink {
    pub(crate) async fn publish(&mut self, events: &[ChangeEvent]) -> Result<Ack, SinkError> {
        self.buf.clear();
        let mut written = 0u64;
        for ev in events {
            match ev.route.as_deref() {
                // Dead letters are for a DLQ topic; without Kafka they are logged, so that stdout
                // carries only the events.
                Some(r) if r.dead_letter => {
                    let mut v = Vec::new();
                    encode_value(ev, &mut v);
                    let headers: Vec<String> = r
                        .headers
                        .iter()
                        .map(|(k, v)| format!("{k}={}", String::from_utf8_lossy(v)))
                        .collect();
                    tracing::warn!(event = %String::from_utf8_lossy(&v), headers = ?headers, "dead letter");
                    continue;
                }
                Some(r) if r.payload.is_some() => self
                    .buf
                    .extend_from_slice(r.payload.as_deref().unwrap_or_default()),
                _ => self.encoder.encode(ev, &mut self.buf),
            }
            self.buf.push(b'\n');
            written += 1;
        }
        self.out
            .write_all(&self.buf)
            .await
            .map_err(SinkError::Stdout)?;
        // A batch is a transaction: flush it whole so a reader never waits on half of one.
        self.out.flush().await.map_err(SinkError::Stdout)?;
        crate::telemetry::metrics::events_published("stdout", written);
        Ok(Ack::done())
    }

    pub(crate) async fn flush(&mut self) -> Result<(), SinkError> {
        self.out.flush().await.map_err(SinkError::Stdout)
    }
}
