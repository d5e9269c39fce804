//! The crawler's passive harvest and BEP 51 sampling in the simulator: crawler ids spread over
//! the key space among ordinary nodes, info-hashes announced by ordinary nodes, found by the
//! crawler through `crawl::Harvester`. With seed 7: 22 of 40 announced info-hashes are harvested
//! passively (all from `get_peers`: an announce follows its own lookup), 30 of 40 after one
//! sampling lookup per crawler id.

use core::time::Duration;
use std::collections::BTreeSet;

use dht_proto::crawl::{Found, Harvester, HowFound, spread_ids};
use dht_proto::internals::TestRng;
use dht_proto::{Id, Instant};
use dht_tests::sim::{Action, Sim, SimConfig};
use rand_core::RngCore;

const HONEST: u32 = 300;
const CRAWLER_IDS: u32 = 16;
const ANNOUNCED: u64 = 40;

#[test]
fn spread_ids_harvest_announced_info_hashes() {
    let mut config = SimConfig::new(7);
    config.keep_events = true;
    config.node.report_queries = true;
    let mut s = Sim::new(config);
    s.add_nodes(HONEST);
    let mut rng = TestRng(7);
    let crawler_ids = spread_ids(CRAWLER_IDS, &mut rng);
    let first_crawler = s.hosts();
    for id in &crawler_ids {
        s.add_node(Some(*id));
    }
    s.routers = vec![0];
    s.protect(0, true);
    for h in 1..s.hosts() {
        let at = Instant::from_millis(s.rng.below(10_000));
        s.schedule(at, Action::Bootstrap(h));
    }
    s.run_for(Duration::from_secs(120)).unwrap();

    // Ordinary nodes announce info-hashes over five minutes.
    let announced: Vec<Id> = (0..ANNOUNCED)
        .map(|i| {
            let mut bytes = [0; 20];
            TestRng(1000 + i).fill_bytes(&mut bytes);
            Id::new(bytes)
        })
        .collect();
    for (i, ih) in announced.iter().enumerate() {
        let h = 1 + (i as u32 * 7) % (HONEST - 1);
        let _ = s.announce(h, *ih, Some(6881), i as u64);
        s.run_for(Duration::from_secs(300 / ANNOUNCED)).unwrap();
    }
    s.run_for(Duration::from_secs(60)).unwrap();
    let crawler = |h: &u32| *h >= first_crawler;
    let mut harvester = Harvester::new(10_000, &mut rng);
    let mut found: Vec<Found> = Vec::new();
    for (_, h, event) in &s.events {
        if crawler(h) {
            harvester.observe(event, &mut found);
        }
    }
    let passive: BTreeSet<Id> = found.iter().map(|f| f.info_hash).collect();
    let passive_hits = announced.iter().filter(|ih| passive.contains(ih)).count();

    // Then each crawler id samples its own region (BEP 51).
    let seen_before = s.events.len();
    let now = s.now;
    for (k, id) in crawler_ids.iter().enumerate() {
        let h = first_crawler + k as u32;
        s.node_mut(h).unwrap().sample_infohashes(now, *id).unwrap();
    }
    s.run_for(Duration::from_secs(60)).unwrap();
    for (_, h, event) in &s.events[seen_before..] {
        if crawler(h) {
            harvester.observe(event, &mut found);
        }
    }
    let all: BTreeSet<Id> = found.iter().map(|f| f.info_hash).collect();
    let hits = announced.iter().filter(|ih| all.contains(ih)).count();
    let by = |how| found.iter().filter(|f| f.how == how).count();
    eprintln!(
        "{CRAWLER_IDS} crawler ids among {HONEST} nodes: {passive_hits}/{ANNOUNCED} announced \
         info-hashes harvested passively ({} get_peers, {} announce_peer), {hits}/{ANNOUNCED} \
         after sampling ({} from samples)",
        by(HowFound::GetPeers),
        by(HowFound::AnnouncePeer),
        by(HowFound::Sample)
    );
    assert_eq!(all.len(), found.len(), "each info-hash is reported once");
    assert!(
        passive_hits * 2 >= announced.len(),
        "passive harvest: {passive_hits}"
    );
    // One sampling lookup per id reaches only the nodes near that id, each of which samples at
    // most 20 of its info-hashes: it adds to the harvest without completing it. A traversal of
    // the whole key space that returns to each node after its `interval` is what completes it.
    assert!(hits > passive_hits, "sampling added nothing: {hits}");
}
