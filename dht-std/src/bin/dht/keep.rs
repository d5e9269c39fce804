//! `dht announce --keep`: announce, then again every interval, until SIGINT/SIGTERM (or
//! `--timeout`), so the announce never expires.

use core::time::Duration;
use std::process::ExitCode;

use dht_proto::Id;
use serde::Serialize;

use crate::client::{client_setup, drive};
use crate::items::emit;
use crate::session::Session;
use crate::{Fail, Join, Local};

#[derive(Serialize)]
struct RoundRecord {
    #[serde(rename = "type")]
    kind: &'static str,
    info_hash: String,
    round: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    implied_port: bool,
    announced: usize,
    closest: usize,
    /// Seconds until the next round.
    next_in: u64,
}

pub fn run(
    local: &Local,
    join: &Join,
    json: bool,
    timeout: Option<Duration>,
    info_hash: Id,
    port: Option<u16>,
    interval: Duration,
) -> Result<ExitCode, Fail> {
    // No default time limit: it runs until a signal (or --timeout).
    let mut setup = client_setup(Duration::ZERO);
    setup.timeout = timeout;
    let (mut s, contacts) = Session::open(local, Some(join), json, setup)?;
    s.join(&contacts)?;
    let should_stop = |s: &Session| {
        s.stop.load(core::sync::atomic::Ordering::Relaxed)
            || s.deadline.is_some_and(|d| std::time::Instant::now() >= d)
    };
    let mut round = 0u64;
    let mut accepted = false;
    while !should_stop(&s) {
        round += 1;
        let q = s
            .dht
            .announce_peer(info_hash, port)
            .map_err(|e| Fail::failed(format_args!("cannot start the announce: {e}")))?;
        let outcome = drive(&mut s, q, "announce", |_, _| Ok(()))?;
        accepted |= outcome.announced > 0;
        let record = RoundRecord {
            kind: "announce",
            info_hash: info_hash.to_string(),
            round,
            port,
            implied_port: port.is_none(),
            announced: outcome.announced,
            closest: outcome.closest.len(),
            next_in: interval.as_secs(),
        };
        s.out.progress().clear();
        emit(json, &record, || {
            format!(
                "round {round}: announced to {} of the {} closest nodes; again in {} s",
                outcome.announced,
                outcome.closest.len(),
                interval.as_secs()
            )
        })?;
        let next = std::time::Instant::now() + interval;
        while !should_stop(&s) {
            let left = next.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            let left = s.deadline.map_or(left, |d| {
                left.min(d.saturating_duration_since(std::time::Instant::now()))
            });
            s.dht.step(Some(left)).map_err(Fail::failed)?;
            while s.dht.poll_event().is_some() {}
        }
    }
    s.save_state();
    if !accepted {
        return Err(Fail::failed("no node accepted the announce"));
    }
    Ok(ExitCode::SUCCESS)
}
