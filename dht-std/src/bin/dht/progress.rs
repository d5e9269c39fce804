//! Live progress on stderr: one line, redrawn in place, only on a terminal.

use core::time::Duration;
use std::io::Write as _;
use std::time::Instant;

/// How often the line is redrawn at most.
const REDRAW: Duration = Duration::from_millis(100);

/// A progress line on stderr. Disabled (does nothing) when stderr is not a terminal or the
/// output is JSON.
#[derive(Debug)]
pub struct Progress {
    enabled: bool,
    last: Option<Instant>,
    shown: bool,
}

impl Progress {
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            last: None,
            shown: false,
        }
    }

    /// Whether the line is drawn at all (callers use it to poll more often).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Redraws the line with `text()` unless it was drawn less than 100 ms ago.
    pub fn update(&mut self, text: impl FnOnce() -> String) {
        if !self.enabled || self.last.is_some_and(|t| t.elapsed() < REDRAW) {
            return;
        }
        self.last = Some(Instant::now());
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{}", text());
        let _ = err.flush();
        self.shown = true;
    }

    /// Erases the line (before printing results), so the next update draws afresh.
    pub fn clear(&mut self) {
        if self.shown {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
            self.shown = false;
            self.last = None;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
    }
}
