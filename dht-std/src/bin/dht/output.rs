//! Everything the program prints: result records (text or one JSON object per line), errors,
//! the progress line and the log.
//!
//! Each kind of output line is a serde struct implementing [`Record`]: with `--json` it is
//! printed as one JSON object whose `type` field is [`Record::TYPE`] followed by the struct's
//! own fields (the JSON shape is the type); without, as [`Record::text`].

use core::fmt;
use core::time::Duration;
use std::io::{self, IsTerminal as _, Write as _};

use dht_proto::{QueryMetrics, QueryStatus};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::Fail;

/// One kind of output line.
pub trait Record: Serialize {
    /// The `type` field of its JSON object.
    const TYPE: &'static str;

    /// The text form (one or more lines, no trailing newline); `None` prints nothing.
    fn text(&self) -> Option<String>;
}

/// A record with its `type` in front, as printed with `--json`.
#[derive(Serialize)]
struct Tagged<'a, R> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    record: &'a R,
}

/// The line(s) a record prints as, without the trailing newline.
pub fn format<R: Record>(json: bool, record: &R) -> Option<String> {
    if json {
        let tagged = Tagged {
            kind: R::TYPE,
            record,
        };
        // Serializing plain structs of strings and numbers cannot fail.
        serde_json::to_string(&tagged).ok()
    } else {
        record.text()
    }
}

/// Standard output in the chosen mode, with the progress line on stderr.
#[derive(Debug)]
pub struct Out {
    json: bool,
    progress: Progress,
}

impl Out {
    /// Output as JSON lines or text; progress only when asked for and stderr is a terminal.
    pub fn new(json: bool, progress: bool) -> Self {
        Self {
            json,
            progress: Progress::new(progress && !json && io::stderr().is_terminal()),
        }
    }

    /// Whether the output is JSON.
    pub fn json(&self) -> bool {
        self.json
    }

    /// The progress line.
    pub fn progress(&mut self) -> &mut Progress {
        &mut self.progress
    }

    /// Prints a record on stdout (the progress line steps aside).
    pub fn emit<R: Record>(&mut self, record: &R) -> Result<(), Fail> {
        if let Some(line) = format(self.json, record) {
            self.progress.suspend(|| -> io::Result<()> {
                let mut out = io::stdout().lock();
                writeln!(out, "{line}")?;
                out.flush()
            })?;
        }
        Ok(())
    }
}

/// An error as printed with `--json`: `{"type":"error","message":...,"exit_code":...}`.
#[derive(Debug, Serialize)]
pub struct ErrorRecord<'a> {
    /// The one-sentence message (as on stderr without `--json`).
    pub message: &'a str,
    /// The exit status that follows.
    pub exit_code: u8,
}

impl Record for ErrorRecord<'_> {
    const TYPE: &'static str = "error";

    fn text(&self) -> Option<String> {
        Some(format!("dht: {}", self.message))
    }
}

/// Reports a failure: a JSON object on stdout with `--json`, one line on stderr otherwise.
pub fn report_error(json: bool, message: &str, exit_code: u8) {
    let record = ErrorRecord { message, exit_code };
    if json {
        if let Some(line) = format(true, &record) {
            let _ = writeln!(io::stdout().lock(), "{line}");
        }
    } else if let Some(line) = record.text() {
        let _ = writeln!(io::stderr().lock(), "{line}");
    }
}

/// "1 peer", "2 peers".
pub fn plural(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// [`plural`] for the common case of a trailing `s`.
pub fn count(n: usize, noun: &str) -> String {
    let n = u64::try_from(n).unwrap_or(u64::MAX);
    plural(n, noun, &format!("{noun}s"))
}

/// Milliseconds of a duration, for output.
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// How a query ended, as a lowercase word (`completed`, `timed_out`, ...).
pub fn status_name(status: &QueryStatus) -> &'static str {
    match status {
        QueryStatus::Completed => "completed",
        QueryStatus::Exhausted => "exhausted",
        QueryStatus::TimedOut => "timed_out",
        QueryStatus::Error { .. } => "error",
        QueryStatus::Cancelled => "cancelled",
        _ => "other",
    }
}

/// A lookup's metrics, in JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Metrics {
    pub hops: u32,
    pub messages_sent: u32,
    pub responses: u32,
    pub timeouts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_to_first_peer_ms: Option<u64>,
    pub duration_ms: u64,
}

impl From<&QueryMetrics> for Metrics {
    fn from(m: &QueryMetrics) -> Self {
        Self {
            hops: m.hops,
            messages_sent: m.messages_sent,
            responses: m.responses,
            timeouts: m.timeouts,
            time_to_first_peer_ms: m.time_to_first_peer.map(millis),
            duration_ms: millis(m.duration),
        }
    }
}

impl fmt::Display for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}, {}, {}, {}",
            plural(self.hops, "hop", "hops"),
            plural(self.messages_sent, "message", "messages"),
            plural(self.responses, "response", "responses"),
            plural(self.timeouts, "timeout", "timeouts"),
        )?;
        if let Some(t) = self.time_to_first_peer_ms {
            write!(f, ", first peer after {t} ms")?;
        }
        write!(f, ", {} ms", self.duration_ms)
    }
}

/// A node: its id and address.
#[derive(Debug, Clone, Serialize)]
pub struct NodeRecord {
    pub id: String,
    pub addr: String,
}

/// The live progress line on stderr (a spinner and a message, redrawn in place), shown only on
/// a terminal and never with `--json`.
#[derive(Debug)]
pub struct Progress {
    enabled: bool,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A progress line, or one that draws nothing.
    pub fn new(enabled: bool) -> Self {
        Self { enabled, bar: None }
    }

    /// Sets the message (drawing the line if it is not shown); `text` is only called when
    /// the line is enabled.
    pub fn update(&mut self, text: impl FnOnce() -> String) {
        if !self.enabled {
            return;
        }
        let bar = self.bar.get_or_insert_with(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}, {elapsed}") {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        bar.set_message(text());
    }

    /// Runs `f` with the line erased (to print results or log lines).
    pub fn suspend<T>(&self, f: impl FnOnce() -> T) -> T {
        match &self.bar {
            Some(bar) => bar.suspend(f),
            None => f(),
        }
    }

    /// Erases the line; the next [`Progress::update`] draws a new one.
    pub fn clear(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
    }
}

/// Installs the stderr logger: warnings by default, `-v` info, `-vv` debug, `-vvv` trace (one
/// line per datagram). Only this program's own crates log; `RUST_LOG` overrides the level.
pub fn init_logger(verbosity: u8) {
    let level = match verbosity {
        0 => log::LevelFilter::Warn,
        1 => log::LevelFilter::Info,
        2 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    };
    let mut builder = env_logger::Builder::new();
    builder
        .filter_level(log::LevelFilter::Off)
        .filter_module("dht", level)
        .filter_module("dht_std", level)
        .filter_module("dht_proto", level)
        .parse_default_env()
        .format(|buf, record| {
            let level = match record.level() {
                log::Level::Error => "error",
                log::Level::Warn => "warning",
                log::Level::Info => "info",
                log::Level::Debug => "debug",
                log::Level::Trace => "trace",
            };
            writeln!(buf, "dht: {level}: {}", record.args())
        });
    let _ = builder.try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Example {
        name: &'static str,
        n: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        missing: Option<u32>,
    }

    impl Record for Example {
        const TYPE: &'static str = "example";
        fn text(&self) -> Option<String> {
            Some(format!("{} {}", self.name, self.n))
        }
    }

    #[test]
    fn json_lines_lead_with_their_type() {
        let r = Example {
            name: "a\"b\n",
            n: 3,
            missing: None,
        };
        assert_eq!(
            format(true, &r).unwrap(),
            r#"{"type":"example","name":"a\"b\n","n":3}"#
        );
        assert_eq!(format(false, &r).unwrap(), "a\"b\n 3");
    }

    #[test]
    fn plurals() {
        assert_eq!(count(1, "hop"), "1 hop");
        assert_eq!(count(0, "hop"), "0 hops");
        assert_eq!(count(2, "contact"), "2 contacts");
        assert_eq!(plural(1u32, "reply", "replies"), "1 reply");
        let m = Metrics {
            hops: 1,
            messages_sent: 1,
            responses: 2,
            timeouts: 0,
            time_to_first_peer_ms: None,
            duration_ms: 5,
        };
        assert_eq!(
            m.to_string(),
            "1 hop, 1 message, 2 responses, 0 timeouts, 5 ms"
        );
    }
}
