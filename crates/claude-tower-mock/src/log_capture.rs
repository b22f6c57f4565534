//! [`LogCapture`]: what a `tracing` subscriber writes, for tests that assert on logs.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};

/// A cloneable writer that keeps everything written to it (e.g. by
/// `tracing_subscriber::fmt().with_writer(move || capture.clone())`), so a test can assert
/// that a warning was logged, or that a secret never was.
///
/// ```
/// use std::io::Write;
/// use claude_tower::mock::LogCapture;
///
/// let capture = LogCapture::default();
/// let mut writer = capture.clone();
/// writer.write_all(b"WARN rate-limit store failed").unwrap();
/// assert!(capture.text().contains("store failed"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    /// Everything written so far, as text (invalid UTF-8 replaced).
    #[must_use]
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

impl io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
