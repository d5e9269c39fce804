//! `dht sample`: BEP 51 info-hash samples from the nodes around a target.

use core::net::SocketAddr;
use std::collections::HashSet;
use std::process::ExitCode;

use dht_proto::Id;
use serde::Serialize;

use crate::items::{emit, run_on_handle};

use crate::{Fail, Lookup};

/// One node's sample.
#[derive(Serialize)]
struct SamplesRecord {
    #[serde(rename = "type")]
    kind: &'static str,
    from: SocketAddr,
    /// How many info-hashes the node says it stores.
    #[serde(skip_serializing_if = "Option::is_none")]
    num: Option<i64>,
    samples: Vec<String>,
}

/// The last line: what the crawl found.
#[derive(Serialize)]
struct SummaryRecord {
    #[serde(rename = "type")]
    kind: &'static str,
    target: String,
    nodes: usize,
    info_hashes: usize,
}

pub fn run(lookup: &Lookup, json: bool, target: Option<Id>) -> Result<ExitCode, Fail> {
    let target = target.unwrap_or_else(|| Id::new(random_id()));
    let lookup = run_on_handle(lookup, json, move |h| h.sample_infohashes(target))?;
    let mut seen = HashSet::new();
    for s in &lookup.samples {
        let fresh: Vec<Id> = s
            .samples
            .iter()
            .copied()
            .filter(|i| seen.insert(*i))
            .collect();
        if json {
            let record = SamplesRecord {
                kind: "samples",
                from: s.from,
                num: s.num,
                samples: s.samples.iter().map(ToString::to_string).collect(),
            };
            emit(true, &record, String::new)?;
        } else {
            for ih in fresh {
                emit(false, &(), || ih.to_string())?;
            }
        }
    }
    let summary = SummaryRecord {
        kind: "sample_summary",
        target: target.to_string(),
        nodes: lookup.samples.len(),
        info_hashes: seen.len(),
    };
    if json {
        emit(true, &summary, String::new)?;
    } else {
        log::info!(
            "{} info-hashes from {} nodes",
            summary.info_hashes,
            summary.nodes
        );
    }
    if seen.is_empty() {
        if !json {
            log::warn!("no node sent samples");
        }
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn random_id() -> [u8; 20] {
    let seed = dht_std::os_seed();
    let mut id = [0u8; 20];
    id.copy_from_slice(&seed[..20]);
    id
}
