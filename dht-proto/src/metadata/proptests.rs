//! Properties of the framing: any split of the stream gives the same result, and arbitrary
//! bytes never panic, never grow the buffers past their caps and end the fetch at most once.

use alloc::vec::Vec;

use proptest::prelude::*;

use super::msg;
use super::tests::{Peer, events, info_of_len, t};
use super::*;

/// Cuts `data` at the (sorted, deduplicated) positions drawn from `cuts`.
fn split<'a>(data: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    points.push(0);
    points.push(data.len());
    points.sort_unstable();
    points.dedup();
    points.windows(2).map(|w| &data[w[0]..w[1]]).collect()
}

fn check_bounds(fetch: &Fetch) {
    assert!(fetch.input.len() <= fetch.config.extended_cap() + 5);
    assert!(fetch.pending_output().len() < 64 * 1024);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_split_of_an_honest_stream_fetches(
        len in 50usize..(5 * PIECE_LEN),
        order_seed in any::<u64>(),
        cuts in proptest::collection::vec(any::<usize>(), 0..40),
    ) {
        let info = info_of_len(len);
        let peer = Peer::new(info.clone());
        let mut stream = peer.opening();
        // Every piece is requested at once (at most 5 pieces, window 16): answer in a
        // shuffled order, with other messages between them.
        let mut pieces: Vec<usize> = (0..len.div_ceil(PIECE_LEN)).collect();
        let mut s = order_seed;
        for i in (1..pieces.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            pieces.swap(i, (s >> 33) as usize % (i + 1));
        }
        for p in pieces {
            stream.extend(msg::message(4, &[0, 0, 0, p as u8]));
            stream.extend(peer.data(p));
            stream.extend([0, 0, 0, 0]);
        }
        let mut fetch = Fetch::new(peer.info_hash, FetchConfig::default(), t(0));
        for chunk in split(&stream, &cuts) {
            fetch.handle_input(t(1), chunk);
            check_bounds(&fetch);
        }
        let got = events(&mut fetch);
        let info_out = got.iter().find_map(|e| match e {
            FetchEvent::Metadata { info, .. } => Some(info),
            _ => None,
        });
        prop_assert_eq!(info_out, Some(&info));
    }

    #[test]
    fn arbitrary_bytes_after_the_handshakes(
        garbage in proptest::collection::vec(any::<u8>(), 0..4096),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
        ext_handshake in any::<bool>(),
    ) {
        let peer = Peer::new(info_of_len(3 * PIECE_LEN));
        let mut stream = if ext_handshake {
            peer.opening()
        } else {
            msg::handshake(&peer.info_hash, &[1; 20], true).to_vec()
        };
        stream.extend(garbage);
        let mut fetch = Fetch::new(peer.info_hash, FetchConfig::default(), t(0));
        for (i, chunk) in split(&stream, &cuts).into_iter().enumerate() {
            fetch.handle_input(t(i as u64), chunk);
            check_bounds(&fetch);
        }
        fetch.handle_eof(t(100));
        let got = events(&mut fetch);
        let terminal = got
            .iter()
            .filter(|e| matches!(e, FetchEvent::Failed { .. } | FetchEvent::Metadata { .. }))
            .count();
        prop_assert_eq!(terminal, 1);
        prop_assert!(got.len() <= 2);
        prop_assert!(fetch.is_finished());
    }

    #[test]
    fn arbitrary_bytes_from_the_start(
        data in proptest::collection::vec(any::<u8>(), 0..512),
        times in proptest::collection::vec(0u64..100_000, 1..8),
    ) {
        let mut fetch = Fetch::new(Id::new([3; 20]), FetchConfig::default(), t(0));
        for (chunk, now) in data.chunks(data.len() / times.len() + 1).zip(&times) {
            fetch.handle_input(t(*now), chunk);
            check_bounds(&fetch);
        }
        if let Some(deadline) = fetch.poll_timeout() {
            fetch.handle_timeout(deadline);
        }
        prop_assert!(fetch.is_finished());
        prop_assert_eq!(events(&mut fetch).len(), 1);
    }
}
