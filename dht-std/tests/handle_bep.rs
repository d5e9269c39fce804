//! `DhtHandle` and `AsyncDhtHandle` with BEP 44 items, BEP 51 samples, BEP 33 scrapes and
//! kept-alive announces, on a loopback swarm (each node on its own 127.0.0.x address).

use core::net::SocketAddr;
use core::time::Duration;
use std::sync::mpsc;

use dht_proto::bep44::immutable_target;
use dht_proto::{Config, Id, PutItem};
use dht_std::{AsyncDhtHandle, Dht, DhtHandle, Keypair};

/// Runs `f` on a thread and fails the test if it takes longer than 30 s.
fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(f()));
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the test ran for more than 30 s")
}

/// `n` nodes on 127.0.`net`.1.. (distinct addresses), all bootstrapped from the first.
fn swarm(net: u8, n: u8) -> Vec<DhtHandle> {
    let nodes: Vec<DhtHandle> = (1..=n)
        .map(|i| {
            let addr: SocketAddr = format!("127.0.{net}.{i}:0").parse().unwrap();
            let config = Config::local_testing(dht_std::os_seed());
            DhtHandle::spawn(Dht::bind(addr, config).unwrap()).unwrap()
        })
        .collect();
    let seed = nodes[0].local_addr();
    for node in &nodes[1..] {
        assert!(node.bootstrap(&[seed]).unwrap() >= 1);
    }
    // A second round so every table holds the later nodes too.
    for node in &nodes {
        let _ = node.bootstrap(&[seed]);
    }
    nodes
}

#[test]
fn immutable_and_mutable_items() {
    bounded(|| {
        let nodes = swarm(31, 6);
        // Immutable: stored under the SHA-1 of the bencoded value.
        let value = b"12:Hello World!".to_vec();
        let target = immutable_target(&value);
        let put = nodes[1]
            .put_item(PutItem::Immutable(value.clone()))
            .unwrap();
        assert!(put.announced >= 1, "{put:?}");
        let got = nodes[4].get_item(target, b"").unwrap();
        let best = got.best().expect("the item is found");
        assert_eq!(best.value, value);
        assert!(best.verified);
        assert_eq!(best.seq, None);

        // Mutable, salted: the newest version wins; CAS guards the update.
        let key = Keypair::from_secret(&[3; 32]);
        let salt = b"profile".as_slice();
        let target = key.target(salt);
        let v1 = key.sign(b"2:v1".to_vec(), salt, 1, None);
        assert!(nodes[2].put_item(v1).unwrap().announced >= 1);
        let got = nodes[5].get_item(target, salt).unwrap();
        let best = got.best().unwrap();
        assert_eq!(
            (best.value.as_slice(), best.seq),
            (b"2:v1".as_slice(), Some(1))
        );
        assert_eq!(best.key, Some(key.public_key()));
        assert!(best.verified);

        // A CAS naming a version that is not stored is refused by every node that stored v1
        // (the same putter reaches the same nodes: 301).
        let stale = key.sign(b"2:v3".to_vec(), salt, 3, Some(0));
        assert_eq!(nodes[2].put_item(stale).unwrap().announced, 0);
        // The right CAS succeeds.
        let v2 = key.sign(b"2:v2".to_vec(), salt, 2, Some(1));
        assert!(nodes[2].put_item(v2).unwrap().announced >= 1);
        let best = nodes[0].get_item(target, salt).unwrap();
        assert_eq!(best.best().unwrap().seq, Some(2));

        // A forged signature is dropped by the storing nodes (206): nothing is accepted.
        let PutItem::Mutable(mut forged) = key.sign(b"2:v9".to_vec(), salt, 9, None) else {
            unreachable!()
        };
        forged.signature[5] ^= 0x40;
        assert_eq!(
            nodes[3]
                .put_item(PutItem::Mutable(forged))
                .unwrap()
                .announced,
            0
        );
        assert_eq!(
            nodes[1].get_item(target, salt).unwrap().best().unwrap().seq,
            Some(2)
        );
    });
}

#[test]
fn samples_and_scrape() {
    bounded(|| {
        let nodes = swarm(32, 6);
        let info_hash = Id::new([0x42; 20]);
        // Three downloaders on three addresses announce.
        for node in &nodes[1..4] {
            assert!(node.announce(info_hash, Some(6000)).unwrap().announced >= 1);
        }
        let scrape = nodes[5].scrape(info_hash).unwrap();
        assert!(scrape.responders >= 1, "{scrape:?}");
        assert!(scrape.asked >= scrape.responders);
        assert!((scrape.peers - 3.0).abs() < 0.6, "{scrape:?}");
        assert!(scrape.seeds < 0.5, "{scrape:?}");

        let sampled = nodes[5].sample_infohashes(info_hash).unwrap();
        assert!(
            sampled
                .samples
                .iter()
                .any(|s| s.samples.contains(&info_hash) && s.num >= Some(1)),
            "{sampled:?}"
        );
    });
}

#[test]
fn keep_announcing_repeats_until_dropped() {
    bounded(|| {
        let nodes = swarm(33, 3);
        let info_hash = Id::new([0x17; 20]);
        let keeper = nodes[1]
            .keep_announcing(info_hash, Some(7000), Duration::from_secs(1))
            .unwrap();
        assert_eq!(keeper.info_hash(), info_hash);
        let first = keeper.next_round().unwrap();
        assert!(first.announced >= 1, "{first:?}");
        let second = keeper.next_round().unwrap();
        assert!(second.announced >= 1, "{second:?}");
        drop(keeper);
        // Port 0 is refused up front.
        assert!(
            nodes[1]
                .keep_announcing(info_hash, Some(0), Duration::from_secs(1))
                .is_err()
        );
        let peers: Vec<SocketAddr> = nodes[2].get_peers(info_hash).unwrap().collect();
        assert!(peers.iter().any(|p| p.port() == 7000), "{peers:?}");
    });
}

/// The async handle on tokio's current-thread runtime: two commands run concurrently on its
/// single thread, woken by the node thread.
#[test]
fn async_handle_on_tokio() {
    bounded(|| {
        let nodes = swarm(34, 4);
        let mut nodes = nodes.into_iter().map(DhtHandle::as_async);
        let (a, b, c) = (
            nodes.next().unwrap(),
            nodes.next().unwrap(),
            nodes.next().unwrap(),
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let info_hash = Id::new([0x99; 20]);
            let (ann, put) = tokio::join!(
                b.announce(info_hash, Some(5555)),
                c.put_item(PutItem::Immutable(b"i42e".to_vec()))
            );
            assert!(ann.unwrap().announced >= 1);
            assert!(put.unwrap().announced >= 1);
            let mut peers = a.get_peers(info_hash).await.unwrap();
            let mut found = Vec::new();
            while let Some(p) = peers.next().await {
                found.push(p);
            }
            assert!(found.iter().any(|p| p.port() == 5555), "{found:?}");
            assert!(peers.outcome().is_some());
            let item = a.get_item(immutable_target(b"i42e"), b"").await.unwrap();
            assert_eq!(item.best().unwrap().value, b"i42e");
            let pong = a.ping(b.local_addr()).await.unwrap();
            assert_eq!(pong.id, b.id());
            assert!(a.info().await.unwrap().table_len >= 1);
            let dht = a.shutdown().await.unwrap();
            assert!(dht.node().table_len() >= 1);
        });
    });
}

/// The same futures on the smallest executor there is.
#[test]
fn async_handle_on_pollster() {
    bounded(|| {
        let nodes = swarm(35, 3);
        let mut nodes = nodes.into_iter().map(DhtHandle::as_async);
        let (a, b): (AsyncDhtHandle, AsyncDhtHandle) =
            (nodes.next().unwrap(), nodes.next().unwrap());
        pollster::block_on(async {
            let info_hash = Id::new([0x33; 20]);
            assert!(b.announce(info_hash, None).await.unwrap().announced >= 1);
            let keeper = a
                .keep_announcing(info_hash, Some(6100), Duration::from_secs(60))
                .await
                .unwrap();
            assert!(keeper.next_round_async().await.unwrap().announced >= 1);
            let scrape = a.scrape(info_hash).await.unwrap();
            assert!(scrape.peers >= 0.5, "{scrape:?}");
            let samples = a.sample_infohashes(info_hash).await.unwrap();
            assert!(!samples.samples.is_empty());
            let b = b.as_blocking();
            assert!(b.info().unwrap().table_len >= 1);
        });
    });
}
