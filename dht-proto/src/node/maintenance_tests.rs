//! Maintenance and the BEP extensions through whole nodes: re-bootstrap with back-off after the
//! table empties, external-address voting, bucket refreshes, BEP 51 crawling, BEP 33 scrape and
//! BEP 32 `nodes6`.

use alloc::vec::Vec;
use core::net::{IpAddr, Ipv6Addr, SocketAddr};
use core::time::Duration;

use super::tests::{Net, addr, seed};
use super::*;
use crate::event::{Event, QueryStatus};
use crate::server::bloom::Bloom;
use crate::wire::krpc::{Body, FindNode, GetPeers, Message, Query, Want};

fn local(i: usize) -> Config {
    Config::local_testing(seed(i))
}

/// Times at which `from` sent something to `to`, from the network trace.
fn sends(net: &Net, from: usize, to: usize) -> usize {
    net.trace
        .iter()
        .filter(|(f, t, _)| *f == addr(from) && *t == addr(to))
        .count()
}

#[test]
fn an_emptied_table_is_reported_and_rebootstrapped_with_growing_back_off() {
    let mut net = Net::new(2, local);
    net.bootstrap_all();
    assert!(net.nodes[1].routing_table().contains(&net.nodes[0].id()));
    // The only contact dies: pings and refreshes fail until the table is empty.
    net.alive[0] = false;
    let mut emptied_at = None;
    let mut retries = Vec::new();
    let mut last_sends = sends(&net, 1, 0);
    for _ in 0..4_000 {
        if !net.step() {
            break;
        }
        if emptied_at.is_none()
            && net
                .events
                .iter()
                .any(|(i, e)| *i == 1 && matches!(e, Event::RoutingTableEmpty))
        {
            emptied_at = Some(net.now);
        }
        let s = sends(&net, 1, 0);
        if emptied_at.is_some() && s > last_sends {
            retries.push(net.now);
        }
        last_sends = s;
        if net.now > Instant::from_secs(3 * 3600) {
            break;
        }
    }
    let emptied_at = emptied_at.expect("RoutingTableEmpty was reported");
    // The dead contact is kept (it may come back) but it is bad: useless for lookups.
    let table = net.nodes[1].routing_table();
    assert!(table.iter().all(|e| e.is_bad(table.config())));
    // Retries to the seed keep coming, further and further apart (request timeouts make a
    // retry a burst of sends at one instant; keep the first of each burst).
    retries.dedup_by(|later, earlier| {
        later.saturating_duration_since(*earlier) < Duration::from_secs(20)
    });
    assert!(
        retries.len() >= 3,
        "retries at {retries:?} after {emptied_at}"
    );
    let gaps: Vec<Duration> = retries
        .windows(2)
        .map(|w| w[1].saturating_duration_since(w[0]))
        .collect();
    assert!(
        gaps.windows(2).all(|g| g[1] >= g[0]),
        "back-off does not grow: {gaps:?}"
    );
    assert!(gaps.last().unwrap() > gaps.first().unwrap(), "{gaps:?}");
    // The seed comes back: the node joins again.
    net.alive[0] = true;
    net.run_for(Duration::from_secs(3600));
    let table = net.nodes[1].routing_table();
    assert!(
        table.iter().any(|e| !e.is_bad(table.config())),
        "joined again"
    );
}

#[test]
fn external_address_is_learned_from_the_ip_key_of_responses() {
    let mut net = Net::new(8, local);
    net.bootstrap_all();
    let learned: Vec<(usize, SocketAddr)> = net
        .events
        .iter()
        .filter_map(|(i, e)| match e {
            Event::ExternalAddress { addr, reported_by } => {
                assert!(*reported_by >= 3, "believed after {reported_by} reports");
                Some((*i, *addr))
            }
            _ => None,
        })
        .collect();
    assert!(!learned.is_empty());
    for (i, a) in learned {
        assert_eq!(a, addr(i), "node {i} learned a wrong address");
        assert_eq!(net.nodes[i].external_address(), Some(addr(i)));
        // Loopback addresses are exempt from BEP 42, so any id complies.
        assert_eq!(net.nodes[i].id_is_secure(), Some(true));
    }
}

#[test]
fn idle_buckets_are_refreshed_by_lookups() {
    let mut net = Net::new(12, local);
    net.bootstrap_all();
    let refreshes_before = count_finished(&net, CommandKind::Refresh);
    net.run_for(net.nodes[0].config().bucket_refresh_interval + Duration::from_secs(120));
    let refreshes = count_finished(&net, CommandKind::Refresh) - refreshes_before;
    // One or two buckets per node here (the far buckets hold 16); most go idle in that time.
    assert!(
        refreshes >= 6,
        "only {refreshes} refreshes in a refresh interval"
    );
}

fn count_finished(net: &Net, kind: CommandKind) -> usize {
    net.events
        .iter()
        .filter(|(_, e)| matches!(e, Event::QueryFinished { outcome, .. } if outcome.kind == kind))
        .count()
}

#[test]
fn sample_infohashes_crawls_what_was_announced() {
    let mut net = Net::new(16, local);
    net.bootstrap_all();
    let hashes: Vec<Id> = (1..=5u8).map(|b| Id::new([b; 20])).collect();
    for (i, h) in hashes.iter().enumerate() {
        let now = net.now;
        let q = net.nodes[i + 2].announce_peer(now, *h, Some(7000)).unwrap();
        assert!(net.run_until_finished(i + 2, q).announced >= 1);
    }
    let mut seen = alloc::collections::BTreeSet::new();
    for target in &hashes {
        let now = net.now;
        let q = net.nodes[15].sample_infohashes(now, *target).unwrap();
        net.run_until_finished(15, q);
        for (i, e) in &net.events {
            if let Event::SamplesFound {
                query,
                samples,
                num,
                ..
            } = e
            {
                if *i == 15 && *query == q {
                    assert!(num.is_some_and(|n| n >= samples.len() as i64));
                    seen.extend(samples.iter().copied());
                }
            }
        }
    }
    for h in &hashes {
        assert!(seen.contains(h), "{h} never sampled; saw {seen:?}");
    }
}

#[test]
fn get_peers_from_asks_one_node_for_its_peers_and_scrape() {
    let mut net = Net::new(16, local);
    net.bootstrap_all();
    let info_hash = Id::new([0x44; 20]);
    let now = net.now;
    let q = net.nodes[3]
        .announce_peer(now, info_hash, Some(7000))
        .unwrap();
    assert!(net.run_until_finished(3, q).announced >= 1);
    let holder = (0..16)
        .find(|&i| net.nodes[i].stored_peers() > 0)
        .expect("a node stores the announce");
    let other = (0..16).find(|&i| i != holder && i != 3).unwrap();
    let before = net.trace.len();
    let now = net.now;
    let q = net.nodes[other]
        .get_peers_from(now, addr(holder), info_hash, true)
        .unwrap();
    let outcome = net.run_until_finished(other, q);
    assert_eq!(outcome.status, QueryStatus::Completed);
    assert_eq!(outcome.metrics.messages_sent, 1, "one request, no lookup");
    let asked: Vec<_> = net.trace[before..]
        .iter()
        .filter(|(f, _, _)| *f == addr(other))
        .map(|(_, t, _)| *t)
        .collect();
    assert_eq!(asked, [addr(holder)], "only the holder is asked");
    assert_eq!(
        net.peers_found(other, q),
        [SocketAddr::new(addr(3).ip(), 7000)]
    );
    let scrape = outcome.scrape.expect("the holder answers the scrape");
    assert_eq!((scrape.seeds, scrape.leechers), (0, 1), "one leecher");

    // A node that stores nothing answers without peers; the query still completes.
    let empty = (0..16)
        .find(|&i| i != other && net.nodes[i].stored_peers() == 0)
        .unwrap();
    let now = net.now;
    let q = net.nodes[other]
        .get_peers_from(now, addr(empty), info_hash, false)
        .unwrap();
    let outcome = net.run_until_finished(other, q);
    assert_eq!(outcome.status, QueryStatus::Completed);
    assert!(net.peers_found(other, q).is_empty());
    assert_eq!(outcome.scrape, None);
}

fn encode(msg: &Message<'_>) -> Vec<u8> {
    let mut buf = [0u8; 1500];
    let n = msg.encode(&mut buf).unwrap();
    buf[..n].to_vec()
}

fn answer(node: &mut Node, now: Instant, from: SocketAddr, q: Query<'_>) -> Vec<u8> {
    let data = encode(&Message {
        transaction_id: b"q1",
        version: None,
        ip: None,
        read_only: false,
        body: Body::Query(q),
    });
    let _ = node.handle_datagram(now, from, &data);
    let mut buf = [0u8; 1500];
    let mut reply = Vec::new();
    while let Some(t) = node.poll_transmit(now, &mut buf) {
        if t.to == from
            && !matches!(
                Message::decode(&buf[..t.len], &Default::default())
                    .unwrap()
                    .body,
                Body::Query(_)
            )
        {
            reply = buf[..t.len].to_vec();
        }
    }
    reply
}

#[test]
fn scrape_reports_seeds_and_peers_in_bloom_filters() {
    let mut net = Net::new(2, local);
    net.bootstrap_all();
    let info_hash = Id::new([0x33; 20]);
    // 30 peers announce through the protocol, every third a seed.
    let node = &mut net.nodes[0];
    let now = Instant::from_secs(2000);
    for i in 0..30u8 {
        let from = SocketAddr::new(IpAddr::V4(core::net::Ipv4Addr::new(10, 1, 0, i + 1)), 6000);
        let reply = answer(
            node,
            now,
            from,
            Query::GetPeers(GetPeers {
                id: Id::new([i + 100; 20]),
                info_hash,
                want: None,
                noseed: false,
                scrape: false,
            }),
        );
        let msg = Message::decode(&reply, &Default::default()).unwrap();
        let Body::Response(r) = msg.body else {
            panic!("{msg}")
        };
        let token = r.token.unwrap().to_vec();
        let _ = answer(
            node,
            now,
            from,
            Query::AnnouncePeer(crate::wire::krpc::AnnouncePeer {
                id: Id::new([i + 100; 20]),
                info_hash,
                port: 6000,
                implied_port: false,
                token: &token,
                seed: i % 3 == 0,
            }),
        );
    }
    let reply = answer(
        node,
        now,
        addr(40),
        Query::GetPeers(GetPeers {
            id: Id::new([7; 20]),
            info_hash,
            want: None,
            noseed: false,
            scrape: true,
        }),
    );
    let msg = Message::decode(&reply, &Default::default()).unwrap();
    let Body::Response(r) = msg.body else {
        panic!("{msg}")
    };
    let seeds = Bloom::from_bytes(*r.bf_seeds.unwrap()).estimate();
    let peers = Bloom::from_bytes(*r.bf_peers.unwrap()).estimate();
    assert!((seeds - 10.0).abs() < 2.0, "seeds estimated at {seeds}");
    assert!((peers - 20.0).abs() < 3.0, "peers estimated at {peers}");
}

#[test]
fn ipv6_requesters_get_nodes6_and_want_selects_families() {
    let now = Instant::from_secs(1);
    let mut node = Node::new(local(4), now).unwrap();
    for i in 1..=5u16 {
        let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, i)), 6881);
        node.add_node(now, v6, Some(Id::new([i as u8; 20])))
            .unwrap();
        node.add_node(now, addr(usize::from(i)), Some(Id::new([i as u8 + 50; 20])))
            .unwrap();
    }
    let from6 = SocketAddr::new(
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 99)),
        6881,
    );
    let ask = |node: &mut Node, from, want| {
        let reply = answer(
            node,
            now,
            from,
            Query::FindNode(FindNode {
                id: Id::new([9; 20]),
                target: Id::new([1; 20]),
                want,
            }),
        );
        let msg = Message::decode(&reply, &Default::default()).unwrap();
        let Body::Response(r) = msg.body else {
            panic!("{msg}")
        };
        (
            r.nodes.map_or(0, |n| n.len()),
            r.nodes6.map_or(0, |n| n.len()),
        )
    };
    // By default, the requester's own family.
    let (n4, n6) = ask(&mut node, from6, None);
    assert_eq!((n4, n6 > 0), (0, true));
    let (n4, n6) = ask(&mut node, addr(30), None);
    assert_eq!((n4 > 0, n6), (true, 0));
    // BEP 32 `want` asks for both.
    let (n4, n6) = ask(&mut node, from6, Some(Want { v4: true, v6: true }));
    assert!(n4 > 0 && n6 > 0);
}

#[test]
fn nodes_that_only_queried_us_are_not_handed_out_while_answered_ones_suffice() {
    let mut net = Net::new(40, local);
    net.bootstrap_all();
    let now = net.now;
    let node = &mut net.nodes[0];
    // A made-up id right next to ours (so its bucket has room), from an address that never
    // answers anything; then someone looks for exactly that id.
    let own = node.id();
    let sybil = own.with_bit(159, !own.bit(159));
    let target = sybil;
    let _ = answer(
        node,
        now,
        addr(60),
        Query::Ping(crate::wire::krpc::Ping { id: sybil }),
    );
    assert!(
        node.routing_table().contains(&sybil),
        "it is in the table, unverified"
    );
    let reply = answer(
        node,
        now,
        addr(61),
        Query::FindNode(FindNode {
            id: Id::new([0x61; 20]),
            target,
            want: None,
        }),
    );
    let msg = Message::decode(&reply, &Default::default()).unwrap();
    let Body::Response(r) = msg.body else {
        panic!("{msg}")
    };
    let nodes: Vec<Id> = r.nodes.unwrap().iter().map(|n| n.id).collect();
    assert_eq!(nodes.len(), 8);
    assert!(!nodes.contains(&sybil));
}

/// Regression: the first node of a network, which never bootstraps and is only ever queried,
/// stayed at a single bucket of 8 forever (candidates cannot split a bucket, and refreshes
/// waited for a bootstrap that never came).
#[test]
fn a_node_that_is_only_queried_still_grows_its_table() {
    let mut net = Net::new(30, local);
    net.bootstrap_all();
    assert!(!net.nodes[0].is_bootstrapped());
    let k = net.nodes[0].config().bucket_size;
    assert!(
        net.nodes[0].table_len() > 2 * k,
        "{} entries",
        net.nodes[0].table_len()
    );
}

/// Regression (found by the simulator): after `Bootstrapped` only the far half of the table
/// was refreshed, so tables stayed sparse in between and some lookups failed. Every bucket is
/// refreshed now; right after joining, tables hold most of what a node can know.
#[test]
fn tables_are_dense_right_after_bootstrap() {
    let mut net = Net::new(80, local);
    net.bootstrap_all();
    let sizes: Vec<usize> = net.nodes.iter().map(Node::table_len).collect();
    // With the default far buckets: mean 24.7 entries without the fix, 42.1 with it.
    let mean = sizes.iter().sum::<usize>() as f64 / sizes.len() as f64;
    assert!(mean >= 35.0, "mean table size {mean}: {sizes:?}");
}

/// A restarted node gets its saved table back: `export_nodes` then `import_nodes` into a fresh
/// node with the same id keeps most contacts (imports may split buckets; they are verified by
/// pings before they are trusted).
#[test]
fn a_restarted_node_restores_its_saved_table() {
    let mut net = Net::new(80, local);
    net.bootstrap_all();
    let old = &net.nodes[10];
    let saved = old.export_nodes();
    assert!(saved.len() >= 24, "only {} exported", saved.len());
    let mut config = old.config().clone();
    config.id = Some(old.id());
    let mut fresh = Node::new(config, net.now).unwrap();
    let taken = fresh.import_nodes(net.now, saved.iter().copied());
    assert!(
        fresh.table_len() * 4 >= saved.len() * 3 && taken >= fresh.table_len(),
        "restored {} (taken {taken}) of {}",
        fresh.table_len(),
        saved.len()
    );
}

/// BEP 5 answers to find_node and get_peers carry `nodes`; a node with an empty table sends an
/// empty string rather than leaving the key out (found by the interoperability checks).
#[test]
fn an_empty_table_still_answers_with_a_nodes_key() {
    let now = Instant::from_secs(1);
    let mut node = Node::new(local(2), now).unwrap();
    // A read-only requester (BEP 43) does not enter the table, which stays empty.
    let query = encode(&Message {
        transaction_id: b"q1",
        version: None,
        ip: None,
        read_only: true,
        body: Body::Query(Query::FindNode(FindNode {
            id: Id::new([3; 20]),
            target: Id::new([4; 20]),
            want: None,
        })),
    });
    let _ = node.handle_datagram(now, addr(3), &query);
    let mut buf = [0u8; 1500];
    let t = node.poll_transmit(now, &mut buf).expect("an answer");
    assert_eq!(node.table_len(), 0);
    let msg = Message::decode(&buf[..t.len], &Default::default()).unwrap();
    let Body::Response(r) = msg.body else {
        panic!("{msg}")
    };
    assert_eq!(r.nodes.map(|n| n.len()), Some(0));
    assert!(
        r.nodes6.is_none(),
        "an IPv4 requester did not ask for nodes6"
    );
}

/// BEP 33 `noseed`: when not every peer fits in a reply, a downloader gets the other
/// downloaders first (found unused while reviewing: the store had it, the node did not ask).
#[test]
fn noseed_prefers_downloaders_when_the_reply_is_full() {
    let now = Instant::from_secs(1);
    let mut node = Node::new(local(5), now).unwrap();
    let info_hash = Id::new([0x44; 20]);
    let mut downloaders = alloc::collections::BTreeSet::new();
    for i in 0..150u16 {
        let [a, b] = i.to_be_bytes();
        let from = SocketAddr::new(IpAddr::V4(core::net::Ipv4Addr::new(10, 9, a, b + 1)), 6000);
        let get = Query::GetPeers(GetPeers {
            id: Id::new([9; 20]),
            info_hash,
            want: None,
            noseed: false,
            scrape: false,
        });
        let msg_bytes = answer(&mut node, now, from, get);
        let msg = Message::decode(&msg_bytes, &Default::default()).unwrap();
        let Body::Response(r) = msg.body else {
            panic!("{msg}")
        };
        let token = r.token.unwrap().to_vec();
        let seed = i % 3 == 0;
        if !seed {
            downloaders.insert(from);
        }
        let _ = answer(
            &mut node,
            now,
            from,
            Query::AnnouncePeer(crate::wire::krpc::AnnouncePeer {
                id: Id::new([9; 20]),
                info_hash,
                port: 6000,
                implied_port: false,
                token: &token,
                seed,
            }),
        );
    }
    assert_eq!(node.stored_peers(), 150);
    let values = |node: &mut Node, noseed| {
        let reply = answer(
            node,
            now,
            addr(7),
            Query::GetPeers(GetPeers {
                id: Id::new([7; 20]),
                info_hash,
                want: None,
                noseed,
                scrape: false,
            }),
        );
        let msg = Message::decode(&reply, &Default::default()).unwrap();
        let Body::Response(r) = msg.body else {
            panic!("{msg}")
        };
        r.values.unwrap().iter().collect::<Vec<_>>()
    };
    let with_noseed = values(&mut node, true);
    assert!(
        with_noseed.len() < 150,
        "the reply is full: {}",
        with_noseed.len()
    );
    assert!(
        downloaders.iter().all(|d| with_noseed.contains(d)),
        "every downloader first"
    );
    let plain = values(&mut node, false);
    assert!(
        !downloaders.iter().all(|d| plain.contains(d)),
        "a random subset otherwise"
    );
}
