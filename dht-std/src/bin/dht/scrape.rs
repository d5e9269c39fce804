//! `dht scrape`: a torrent's seeds and downloaders, estimated from BEP 33 bloom filters.

use std::process::ExitCode;

use dht_proto::Id;
use serde::Serialize;

use crate::items::{emit, run_on_handle};

use crate::{Fail, Lookup};

#[derive(Serialize)]
struct ScrapeRecord {
    #[serde(rename = "type")]
    kind: &'static str,
    info_hash: String,
    /// Estimated seeds (rounded).
    seeds: u64,
    /// Estimated downloaders (rounded).
    peers: u64,
    /// Nodes that sent filters.
    responders: usize,
    /// Closest nodes asked.
    asked: usize,
}

pub fn run(lookup: &Lookup, json: bool, info_hash: Id) -> Result<ExitCode, Fail> {
    let scrape = run_on_handle(lookup, json, move |h| h.scrape(info_hash))?;
    let record = ScrapeRecord {
        kind: "scrape",
        info_hash: info_hash.to_string(),
        seeds: scrape.seeds.round() as u64,
        peers: scrape.peers.round() as u64,
        responders: scrape.responders,
        asked: scrape.asked,
    };
    emit(json, &record, || {
        format!(
            "about {} seeds and {} downloaders (filters from {} of the {} closest nodes)",
            record.seeds, record.peers, record.responders, record.asked
        )
    })?;
    if scrape.responders == 0 {
        return Err(Fail::failed("no node answered the scrape"));
    }
    Ok(ExitCode::SUCCESS)
}
