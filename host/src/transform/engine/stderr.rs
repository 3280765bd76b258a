//! The guest's stderr, captured per call and bounded, so that what an interpreted guest prints
//! when it fails (a Python traceback, a JavaScript exception, a runtime's own panic text)
//! reaches the author.
//!
//! Design note: the WASI context gives each store a [`StderrCapture`] in place of the process's
//! stderr; stdout stays discarded (a transform's output is its edits, never text). A call
//! starts with an empty capture ([`StderrCapture::clear`]); what the guest wrote is taken
//! after it ([`StderrCapture::take`]): into the error of a call that failed, and otherwise into
//! the log. A capture keeps the last [`MAX_STDERR_BYTES`] of a call (the end of a traceback
//! names the error) and counts what it cut. Writes never block and never fail, so a guest that
//! prints a lot is neither stopped nor slowed by its host.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Bytes of stderr kept per call: the last ones written.
pub(crate) const MAX_STDERR_BYTES: usize = 16 << 10;

#[derive(Default)]
struct Captured {
    buf: Vec<u8>,
    /// Bytes written in this call and cut from the front of `buf`.
    cut: u64,
}

impl Captured {
    fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        // Trim in steps, so that a guest writing byte by byte does not move the buffer each time.
        if self.buf.len() > 2 * MAX_STDERR_BYTES {
            let excess = self.buf.len() - MAX_STDERR_BYTES;
            self.buf.drain(..excess);
            self.cut += excess as u64;
        }
    }
}

/// A store's stderr: cloned into the WASI context, and read by the host after each call.
#[derive(Clone, Default)]
pub(crate) struct StderrCapture(Arc<Mutex<Captured>>);

impl StderrCapture {
    fn lock(&self) -> std::sync::MutexGuard<'_, Captured> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets what earlier calls wrote.
    pub(crate) fn clear(&self) {
        let mut c = self.lock();
        c.buf.clear();
        c.cut = 0;
    }

    /// What the guest wrote since [`StderrCapture::clear`], as text (invalid UTF-8 replaced),
    /// trailing blank space trimmed, with a note of what was cut; `None` when nothing was.
    pub(crate) fn take(&self) -> Option<String> {
        let mut c = self.lock();
        let mut cut = c.cut;
        if c.buf.len() > MAX_STDERR_BYTES {
            let excess = c.buf.len() - MAX_STDERR_BYTES;
            cut += excess as u64;
            c.buf.drain(..excess);
        }
        if cut > 0 {
            // The cut may have split a UTF-8 sequence: drop its continuation bytes (at most 3).
            let partial = c
                .buf
                .iter()
                .take(3)
                .take_while(|b| *b & 0xC0 == 0x80)
                .count();
            c.buf.drain(..partial);
            cut += partial as u64;
        }
        let text = String::from_utf8_lossy(&c.buf).trim_end().to_owned();
        c.buf.clear();
        c.cut = 0;
        if text.trim().is_empty() {
            return None;
        }
        Some(if cut > 0 {
            format!("[{cut} earlier bytes cut] {text}")
        } else {
            text
        })
    }
}

impl IsTerminal for StderrCapture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for StderrCapture {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl Pollable for StderrCapture {
    // Always ready: a write never waits (`#[async_trait]`'s form, written out).
    fn ready<'a, 'b>(&'a mut self) -> Pin<Box<dyn Future<Output = ()> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(std::future::ready(()))
    }
}

impl OutputStream for StderrCapture {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.lock().push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Any amount: what passes the bound is cut, never refused.
        Ok(64 << 10)
    }
}

impl tokio::io::AsyncWrite for StderrCapture {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.lock().push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capture_keeps_the_end_of_a_call_and_says_what_it_cut() {
        let mut c = StderrCapture::default();
        assert_eq!(c.take(), None);
        OutputStream::write(
            &mut c,
            bytes::Bytes::from_static(b"Traceback\nKeyError: 'x'\n\n"),
        )
        .unwrap();
        assert_eq!(c.take().as_deref(), Some("Traceback\nKeyError: 'x'"));
        assert_eq!(c.take(), None, "taken once");
        // A flood: the last MAX_STDERR_BYTES are kept, the rest counted.
        for _ in 0..10_000 {
            OutputStream::write(&mut c, bytes::Bytes::from_static(b"0123456789")).unwrap();
        }
        OutputStream::write(&mut c, bytes::Bytes::from_static(b"the end")).unwrap();
        let text = c.take().unwrap();
        assert!(
            text.starts_with("[83623 earlier bytes cut] "),
            "{}",
            &text[..40]
        );
        assert!(text.ends_with("the end") && text.len() < MAX_STDERR_BYTES + 40);
        // A cut inside a UTF-8 sequence drops only that sequence's remains.
        for _ in 0..20_000 {
            OutputStream::write(&mut c, bytes::Bytes::from_static("é".as_bytes())).unwrap();
        }
        OutputStream::write(&mut c, bytes::Bytes::from_static(b"z")).unwrap();
        let text = c.take().unwrap();
        assert!(
            text.starts_with("[23618 earlier bytes cut] éé"),
            "{}",
            &text[..40]
        );
        assert!(text.ends_with("éz"));
        assert_eq!(
            text.len(),
            "[23618 earlier bytes cut] ".len() + MAX_STDERR_BYTES - 1
        );
        // A new call starts empty.
        OutputStream::write(&mut c, bytes::Bytes::from_static(b"old")).unwrap();
        c.clear();
        assert_eq!(c.take(), None);
        assert!(OutputStream::check_write(&mut c).unwrap() > 0);
    }
}
