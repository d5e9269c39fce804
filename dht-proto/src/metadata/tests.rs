use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;

use super::msg::{self, Sent};
use super::*;

pub(super) const PEER_UT: u8 = 7;

/// An info dictionary of `len` bytes (valid bencode: one long string under a 6- or 5-byte key;
/// some lengths, such as 1,014, cannot be written with the 6-byte key alone, since the string's
/// length has one digit more or less than fits).
pub(super) fn info_of_len(len: usize) -> Vec<u8> {
    let digits_of = |n: usize| alloc::format!("{n}").len();
    for head in [&b"d6:pieces"[..], b"d5:piece"] {
        // `len` = head + digits(body) + ':' + body + 'e'.
        for digits in 1..=digits_of(len) {
            let Some(body) = len.checked_sub(head.len() + digits + 2) else {
                continue;
            };
            if digits_of(body) != digits {
                continue;
            }
            let mut v = Vec::with_capacity(len);
            v.extend_from_slice(head);
            v.extend_from_slice(alloc::format!("{body}:").as_bytes());
            v.extend((0..body).map(|i| (i % 251) as u8));
            v.push(b'e');
            assert_eq!(v.len(), len);
            return v;
        }
    }
    panic!("no info dictionary of {len} bytes");
}

/// Lengths next to a power of ten cannot all be written with one key (found by the proptest
/// `any_split_of_an_honest_stream_fetches`, which drew 1,014).
#[test]
fn info_dictionaries_of_every_length() {
    for len in 20..(5 * PIECE_LEN) {
        assert_eq!(info_of_len(len).len(), len);
    }
    assert_eq!(&info_of_len(1_014)[..8], b"d5:piece");
}

pub(super) fn hash_of(info: &[u8]) -> Id {
    Id::new(sha1_smol::Sha1::from(info).digest().bytes())
}

pub(super) fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

/// A scripted seeding peer: answers the fetch's requests from `info`.
pub(super) struct Peer {
    pub info: Vec<u8>,
    pub info_hash: Id,
    pub got: Vec<Sent>,
    pub seen_handshake: bool,
    pub unread: Vec<u8>,
}

impl Peer {
    pub fn new(info: Vec<u8>) -> Self {
        let info_hash = hash_of(&info);
        Self {
            info,
            info_hash,
            got: Vec::new(),
            seen_handshake: false,
            unread: Vec::new(),
        }
    }

    /// The peer's opening: handshake plus extended handshake.
    pub fn opening(&self) -> Vec<u8> {
        let mut out = msg::handshake(&self.info_hash, &[9; 20], true).to_vec();
        out.extend(msg::extended_handshake(
            PEER_UT,
            Some(self.info.len() as i64),
        ));
        out
    }

    /// Takes what the fetch wrote; returns the new messages.
    pub fn read(&mut self, fetch: &mut Fetch) -> Vec<Sent> {
        self.unread.extend_from_slice(fetch.pending_output());
        let n = fetch.pending_output().len();
        fetch.consume_output(n);
        let (sent, used) = msg::read_sent(&self.unread, !self.seen_handshake);
        if !sent.is_empty() {
            self.seen_handshake = true;
        }
        self.unread.drain(..used);
        self.got.extend(sent.iter().cloned());
        sent
    }

    /// The data message for `piece`.
    pub fn data(&self, piece: usize) -> Vec<u8> {
        let start = piece * PIECE_LEN;
        let end = (start + PIECE_LEN).min(self.info.len());
        msg::data(
            UT_METADATA_ID,
            piece as u32,
            self.info.len(),
            &self.info[start..end],
        )
    }

    /// Requests among `sent`.
    pub fn requests(sent: &[Sent]) -> Vec<usize> {
        sent.iter()
            .filter_map(|s| match s {
                Sent::UtMetadata {
                    msg_type: 0, piece, ..
                } => Some(*piece as usize),
                _ => None,
            })
            .collect()
    }
}

pub(super) fn events(fetch: &mut Fetch) -> Vec<FetchEvent> {
    core::iter::from_fn(|| fetch.poll_event()).collect()
}

fn failed(fetch: &mut Fetch) -> Option<FailReason> {
    events(fetch).into_iter().find_map(|e| match e {
        FetchEvent::Failed { reason } => Some(reason),
        _ => None,
    })
}

/// Runs a whole exchange in which the peer answers every request at once, in order.
fn run_honest(info: Vec<u8>) -> (Fetch, Peer, Vec<FetchEvent>) {
    let mut peer = Peer::new(info);
    let mut fetch = Fetch::new(peer.info_hash, FetchConfig::default(), t(0));
    let mut all = Vec::new();
    peer.read(&mut fetch);
    fetch.handle_input(t(1), &peer.opening());
    for round in 0..1000 {
        let sent = peer.read(&mut fetch);
        all.extend(events(&mut fetch));
        if fetch.is_finished() {
            break;
        }
        for piece in Peer::requests(&sent) {
            fetch.handle_input(t(2 + round), &peer.data(piece));
        }
    }
    (fetch, peer, all)
}

fn metadata_of(events: &[FetchEvent]) -> Option<&Vec<u8>> {
    events.iter().find_map(|e| match e {
        FetchEvent::Metadata { info, .. } => Some(info),
        _ => None,
    })
}

#[test]
fn opening_is_handshake_with_extension_bit() {
    let id = Id::new([5; 20]);
    let mut fetch = Fetch::new(id, FetchConfig::default(), t(0));
    let out = fetch.pending_output().to_vec();
    assert_eq!(out.len(), HANDSHAKE_LEN);
    assert_eq!(&out[..20], PROTOCOL);
    assert_eq!(out[25] & 0x10, 0x10);
    assert_eq!(&out[28..48], id.as_bytes());
    assert_eq!(&out[48..56], b"-DP0001-");
    fetch.consume_output(10);
    assert_eq!(fetch.pending_output(), &out[10..]);
    fetch.consume_output(1000);
    assert!(fetch.pending_output().is_empty());
    assert!(!fetch.is_finished());
}

#[test]
fn single_piece_fetch() {
    let info = info_of_len(3000);
    let (fetch, peer, events) = run_honest(info.clone());
    assert_eq!(metadata_of(&events), Some(&info));
    assert!(fetch.is_finished());
    assert_eq!(fetch.poll_timeout(), None);
    // Handshake, extended handshake offering ut_metadata as id 1, one request for piece 0,
    // sent with the peer's id.
    assert!(matches!(
        peer.got[0],
        Sent::Handshake {
            extensions: true,
            ..
        }
    ));
    assert_eq!(
        peer.got[1],
        Sent::ExtendedHandshake {
            ut_metadata: Some(1)
        }
    );
    assert_eq!(
        peer.got[2],
        Sent::UtMetadata {
            ext_id: PEER_UT,
            msg_type: 0,
            piece: 0
        }
    );
    assert!(matches!(
        &events[0],
        FetchEvent::Handshake {
            metadata_size: 3000,
            peer_id,
            client: Some(c),
        } if *peer_id == [9; 20] && c == b"test peer"
    ));
}

#[test]
fn multi_piece_fetch_exact_boundaries() {
    for len in [PIECE_LEN, PIECE_LEN + 1, 3 * PIECE_LEN, 5 * PIECE_LEN - 7] {
        let info = info_of_len(len);
        let (_, peer, events) = run_honest(info.clone());
        assert_eq!(metadata_of(&events), Some(&info), "len {len}");
        let mut requested = Peer::requests(&peer.got);
        requested.sort_unstable();
        assert_eq!(requested, (0..len.div_ceil(PIECE_LEN)).collect::<Vec<_>>());
    }
}

#[test]
fn pieces_in_any_order_and_byte_by_byte() {
    let info = info_of_len(4 * PIECE_LEN + 100);
    let mut peer = Peer::new(info.clone());
    let mut fetch = Fetch::new(peer.info_hash, FetchConfig::default(), t(0));
    peer.read(&mut fetch);
    for b in peer.opening() {
        fetch.handle_input(t(1), &[b]);
    }
    let sent = peer.read(&mut fetch);
    let mut pieces = Peer::requests(&sent);
    assert_eq!(pieces.len(), 5, "all pieces requested at once (window 16)");
    pieces.reverse();
    for p in pieces {
        for chunk in peer.data(p).chunks(777) {
            fetch.handle_input(t(2), chunk);
        }
    }
    assert_eq!(metadata_of(&events(&mut fetch)), Some(&info));
}

#[test]
fn window_follows_reqq_and_config() {
    let info = info_of_len(10 * PIECE_LEN);
    let mut peer = Peer::new(info.clone());
    let config = FetchConfig {
        max_outstanding: 4,
        ..FetchConfig::default()
    };
    let mut fetch = Fetch::new(peer.info_hash, config, t(0));
    peer.read(&mut fetch);
    let mut opening = msg::handshake(&peer.info_hash, &[9; 20], true).to_vec();
    // reqq 2 below the configured 4.
    opening.extend(msg::extended(
        0,
        alloc::format!(
            "d1:md11:ut_metadatai{PEER_UT}ee13:metadata_sizei{}e4:reqqi2ee",
            info.len()
        )
        .as_bytes(),
    ));
    fetch.handle_input(t(1), &opening);
    let sent = peer.read(&mut fetch);
    assert_eq!(Peer::requests(&sent), [0, 1]);
    fetch.handle_input(t(2), &peer.data(1));
    assert_eq!(Peer::requests(&peer.read(&mut fetch)), [2]);
    fetch.handle_input(t(2), &peer.data(0));
    assert_eq!(Peer::requests(&peer.read(&mut fetch)), [3]);
}

#[test]
fn other_peer_wire_messages_are_ignored() {
    let info = info_of_len(PIECE_LEN + 10);
    let mut peer = Peer::new(info.clone());
    let mut fetch = Fetch::new(peer.info_hash, FetchConfig::default(), t(0));
    peer.read(&mut fetch);
    let mut input = msg::handshake(&peer.info_hash, &[9; 20], true).to_vec();
    input.extend([0, 0, 0, 0]); // keep-alive
    input.extend(msg::message(5, &[0xff; 300])); // bitfield
    input.extend(msg::message(4, &[0, 0, 0, 3])); // have
    input.extend(msg::message(1, &[])); // unchoke
    input.extend(msg::message(0, &[])); // choke
    input.extend(msg::message(2, &[])); // interested
    input.extend(msg::message(9, &[0x1a, 0xe1])); // port
    input.extend(msg::message(14, &[])); // have all
    input.extend(msg::message(99, &[1, 2, 3])); // unknown id
    input.extend(msg::extended(3, b"d5:addeda6:xxxxxxe")); // ut_pex or any other extension
    input.extend(msg::extended(0, b"d1:md6:ut_pexi3ee1:v3:abce")); // handshake without metadata: no
    let mut fetch2 = Fetch::new(peer.info_hash, FetchConfig::default(), t(0));
    fetch2.handle_input(t(1), &input);
    assert_eq!(failed(&mut fetch2), Some(FailReason::NoUtMetadata));

    input.truncate(input.len() - msg::extended(0, b"d1:md6:ut_pexi3ee1:v3:abce").len());
    input.extend(&peer.opening()[HANDSHAKE_LEN..]);
    // The peer asks us for metadata: rejected.
    input.extend(msg::request(UT_METADATA_ID, 0));
    // An unknown ut_metadata message type.
    input.extend(msg::extended(UT_METADATA_ID, b"d8:msg_typei9e5:piecei0ee"));
    input.extend([0, 0, 0, 0]);
    fetch.handle_input(t(1), &input);
    let sent = peer.read(&mut fetch);
    assert!(sent.contains(&Sent::UtMetadata {
        ext_id: PEER_UT,
        msg_type: 2,
        piece: 0
    }));
    for p in Peer::requests(&sent) {
        fetch.handle_input(t(2), &peer.data(p));
        fetch.handle_input(t(2), &msg::message(7, &[0; 20])); // piece message
    }
    assert_eq!(metadata_of(&events(&mut fetch)), Some(&info));
}

#[test]
fn skipped_messages_are_not_buffered() {
    let id = Id::new([1; 20]);
    let mut fetch = Fetch::new(id, FetchConfig::default(), t(0));
    fetch.handle_input(t(0), &msg::handshake(&id, &[2; 20], true));
    // A 1 MiB bitfield, fed in 64 KiB chunks.
    let len = 1024 * 1024;
    let mut header = ((len) as u32).to_be_bytes().to_vec();
    header.push(5);
    fetch.handle_input(t(0), &header);
    let chunk = vec![0xffu8; 65536];
    for _ in 0..16 {
        fetch.handle_input(t(0), &chunk);
        assert!(fetch.input.capacity() < 1024, "{}", fetch.input.capacity());
    }
    assert!(!fetch.is_finished());
    assert_eq!(fetch.reading, Reading::Header);
}

fn fail_after(input: &[u8], config: FetchConfig, info_hash: Id) -> Option<FailReason> {
    let mut fetch = Fetch::new(info_hash, config, t(0));
    fetch.handle_input(t(1), input);
    assert!(fetch.is_finished(), "not finished");
    let reason = failed(&mut fetch);
    // Finished fetches ignore everything.
    fetch.handle_input(t(2), &[0; 100]);
    fetch.handle_eof(t(2));
    fetch.handle_timeout(t(1_000_000));
    assert_eq!(fetch.poll_event(), None);
    assert_eq!(fetch.poll_timeout(), None);
    reason
}

fn with_opening(peer: &Peer, tail: &[u8]) -> Vec<u8> {
    let mut v = peer.opening();
    v.extend_from_slice(tail);
    v
}

#[test]
fn handshake_failures() {
    let peer = Peer::new(info_of_len(500));
    let ih = peer.info_hash;
    let c = FetchConfig::default;
    let mut bad = msg::handshake(&ih, &[1; 20], true);
    bad[0] = 18;
    assert_eq!(fail_after(&bad, c(), ih), Some(FailReason::NotBitTorrent));
    let mut bad = msg::handshake(&ih, &[1; 20], true);
    bad[3] = b'X';
    assert_eq!(fail_after(&bad, c(), ih), Some(FailReason::NotBitTorrent));
    assert_eq!(
        fail_after(&msg::handshake(&Id::new([0; 20]), &[1; 20], true), c(), ih),
        Some(FailReason::WrongInfoHash)
    );
    assert_eq!(
        fail_after(&msg::handshake(&ih, &[1; 20], false), c(), ih),
        Some(FailReason::NoExtensionProtocol)
    );
    let hs = msg::handshake(&ih, &[1; 20], true);
    let with = |ext: Vec<u8>| {
        let mut v = hs.to_vec();
        v.extend(ext);
        v
    };
    assert_eq!(
        fail_after(&with(msg::extended_handshake(0, Some(500))), c(), ih),
        Some(FailReason::NoUtMetadata)
    );
    assert_eq!(
        fail_after(&with(msg::extended(0, b"de")), c(), ih),
        Some(FailReason::NoUtMetadata)
    );
    assert_eq!(
        fail_after(&with(msg::extended_handshake(2, None)), c(), ih),
        Some(FailReason::NoMetadataSize)
    );
    assert_eq!(
        fail_after(&with(msg::extended_handshake(2, Some(0))), c(), ih),
        Some(FailReason::NoMetadataSize)
    );
    assert_eq!(
        fail_after(&with(msg::extended_handshake(2, Some(-5))), c(), ih),
        Some(FailReason::NoMetadataSize)
    );
    assert_eq!(
        fail_after(&with(msg::extended_handshake(2, Some(i64::MAX))), c(), ih),
        Some(FailReason::MetadataTooLarge {
            size: i64::MAX as u64
        })
    );
    let mut small = c();
    small.max_metadata_size = 499;
    assert_eq!(
        fail_after(&with(msg::extended_handshake(2, Some(500))), small, ih),
        Some(FailReason::MetadataTooLarge { size: 500 })
    );
    // The cap itself is accepted.
    let mut exact = c();
    exact.max_metadata_size = 500;
    let mut f = Fetch::new(ih, exact, t(0));
    f.handle_input(t(1), &with(msg::extended_handshake(2, Some(500))));
    assert!(!f.is_finished());
    assert_eq!(
        fail_after(
            &with(msg::extended(
                0,
                b"d1:md11:ut_metadatai300ee13:metadata_sizei5ee"
            )),
            c(),
            ih
        ),
        Some(FailReason::Malformed("ut_metadata id out of range"))
    );
    assert!(matches!(
        fail_after(&with(msg::extended(0, b"i5e")), c(), ih),
        Some(FailReason::Malformed(_))
    ));
    assert!(matches!(
        fail_after(&with(msg::extended(0, b"d1:m")), c(), ih),
        Some(FailReason::Malformed(_))
    ));
}

#[test]
fn message_failures() {
    let peer = Peer::new(info_of_len(3 * PIECE_LEN));
    let ih = peer.info_hash;
    let c = FetchConfig::default;
    // Too long, by the general cap and by the extended cap.
    let mut huge = (2 * 1024 * 1024u32).to_be_bytes().to_vec();
    huge.push(5);
    assert_eq!(
        fail_after(&with_opening(&peer, &huge), c(), ih),
        Some(FailReason::MessageTooLong {
            len: 2 * 1024 * 1024
        })
    );
    let mut big_ext = (200_000u32).to_be_bytes().to_vec();
    big_ext.push(20);
    assert_eq!(
        fail_after(&with_opening(&peer, &big_ext), c(), ih),
        Some(FailReason::MessageTooLong { len: 200_000 })
    );
    // Wrong fixed lengths.
    for (id, len) in [(0u8, 3usize), (4, 2), (9, 0), (6, 4)] {
        assert!(matches!(
            fail_after(
                &with_opening(&peer, &msg::message(id, &vec![0; len])),
                c(),
                ih
            ),
            Some(FailReason::Malformed(_))
        ));
    }
    assert!(matches!(
        fail_after(&with_opening(&peer, &[0, 0, 0, 1, 20]), c(), ih),
        Some(FailReason::Malformed(_))
    ));
    // ut_metadata: not bencode, not a dict, no piece.
    for bad in [&b"xyz"[..], b"li1ee", b"d8:msg_typei1ee"] {
        assert!(matches!(
            fail_after(&with_opening(&peer, &msg::extended(1, bad)), c(), ih),
            Some(FailReason::Malformed(_))
        ));
    }
    // Data: unrequested piece, wrong length, wrong total_size.
    let d = |piece: u32, total: usize, bytes: &[u8]| msg::data(1, piece, total, bytes);
    let full = vec![0u8; PIECE_LEN];
    for bad in [
        d(3, 3 * PIECE_LEN, &full),
        d(u32::MAX, 3 * PIECE_LEN, &full),
        d(0, 3 * PIECE_LEN, &full[1..]),
        d(0, 3 * PIECE_LEN, &[0; PIECE_LEN + 1]),
        d(0, 3 * PIECE_LEN + 1, &full),
    ] {
        assert!(matches!(
            fail_after(&with_opening(&peer, &bad), c(), ih),
            Some(FailReason::Malformed(_))
        ));
    }
    // The same piece twice.
    let mut twice = peer.data(0);
    twice.extend(peer.data(0));
    assert_eq!(
        fail_after(&with_opening(&peer, &twice), c(), ih),
        Some(FailReason::Malformed(
            "a metadata piece that was not requested"
        ))
    );
    // Reject of a requested piece.
    assert_eq!(
        fail_after(&with_opening(&peer, &msg::reject(1, 1)), c(), ih),
        Some(FailReason::Rejected { piece: 1 })
    );
}

#[test]
fn reject_of_an_unrequested_piece_is_ignored() {
    let peer = Peer::new(info_of_len(100));
    let mut fetch = Fetch::new(peer.info_hash, FetchConfig::default(), t(0));
    fetch.handle_input(t(1), &with_opening(&peer, &msg::reject(1, 5)));
    assert!(!fetch.is_finished());
}

#[test]
fn wrong_data_is_a_hash_mismatch() {
    let info = info_of_len(2 * PIECE_LEN);
    let mut peer = Peer::new(info);
    let mut fetch = Fetch::new(peer.info_hash, FetchConfig::default(), t(0));
    peer.read(&mut fetch);
    fetch.handle_input(t(1), &peer.opening());
    peer.read(&mut fetch);
    peer.info[PIECE_LEN + 3] ^= 1;
    fetch.handle_input(t(2), &peer.data(0));
    fetch.handle_input(t(2), &peer.data(1));
    assert_eq!(failed(&mut fetch), Some(FailReason::HashMismatch));
}

#[test]
fn timeouts() {
    let peer = Peer::new(info_of_len(2 * PIECE_LEN));
    let ih = peer.info_hash;
    let config = FetchConfig {
        handshake_timeout: Duration::from_secs(5),
        piece_timeout: Duration::from_secs(3),
        total_timeout: Duration::from_secs(20),
        ..FetchConfig::default()
    };

    // Silence: the handshake limit.
    let mut f = Fetch::new(ih, config.clone(), t(1000));
    assert_eq!(f.poll_timeout(), Some(t(6000)));
    f.handle_timeout(t(5999));
    assert!(!f.is_finished());
    f.handle_timeout(t(6000));
    assert_eq!(
        failed(&mut f),
        Some(FailReason::Timeout(TimeoutKind::Handshake))
    );

    // BEP 3 handshake only: still the handshake limit.
    let mut f = Fetch::new(ih, config.clone(), t(0));
    f.handle_input(t(1), &msg::handshake(&ih, &[1; 20], true));
    f.handle_timeout(t(5000));
    assert_eq!(
        failed(&mut f),
        Some(FailReason::Timeout(TimeoutKind::Handshake))
    );

    // Requests outstanding, no answer: the piece limit, restarted by each piece.
    let mut f = Fetch::new(ih, config.clone(), t(0));
    f.handle_input(t(100), &peer.opening());
    assert_eq!(f.poll_timeout(), Some(t(3100)));
    f.handle_input(t(3000), &peer.data(0));
    assert_eq!(f.poll_timeout(), Some(t(6000)));
    f.handle_timeout(t(6000));
    assert_eq!(
        failed(&mut f),
        Some(FailReason::Timeout(TimeoutKind::Piece))
    );

    // Input after a deadline passed: the limit wins.
    let mut f = Fetch::new(ih, config.clone(), t(0));
    f.handle_input(t(100), &peer.opening());
    f.handle_input(t(4000), &peer.data(0));
    assert_eq!(
        failed(&mut f),
        Some(FailReason::Timeout(TimeoutKind::Piece))
    );

    // A peer trickling one piece every 2.9 s: the total limit.
    let config = FetchConfig {
        max_outstanding: 1,
        ..config
    };
    let big = Peer::new(info_of_len(20 * PIECE_LEN));
    let mut f = Fetch::new(big.info_hash, config, t(0));
    f.handle_input(t(0), &big.opening());
    let mut now = 0;
    for piece in 0..20 {
        now += 2900;
        f.handle_input(t(now), &big.data(piece));
        if f.is_finished() {
            break;
        }
    }
    assert_eq!(
        failed(&mut f),
        Some(FailReason::Timeout(TimeoutKind::Total))
    );
    assert!(now >= 20_000);
}

#[test]
fn eof_before_the_end_is_closed() {
    let peer = Peer::new(info_of_len(40));
    let mut f = Fetch::new(peer.info_hash, FetchConfig::default(), t(0));
    f.handle_input(t(1), &peer.opening());
    f.handle_eof(t(2));
    assert_eq!(failed(&mut f), Some(FailReason::Closed));
}

#[test]
fn later_extended_handshakes() {
    let info = info_of_len(2 * PIECE_LEN);
    let mut peer = Peer::new(info);
    let mut f = Fetch::new(peer.info_hash, FetchConfig::default(), t(0));
    peer.read(&mut f);
    f.handle_input(t(1), &peer.opening());
    peer.read(&mut f);
    // A new id for ut_metadata: later requests use it; `m` without it changes nothing.
    f.handle_input(t(2), &msg::extended(0, b"d1:md6:ut_pexi2eee"));
    f.handle_input(t(2), &msg::extended(0, b"d1:md11:ut_metadatai42eee"));
    assert!(!f.is_finished());
    let config = FetchConfig {
        max_outstanding: 1,
        ..FetchConfig::default()
    };
    let mut f2 = Fetch::new(peer.info_hash, config, t(0));
    peer.seen_handshake = false;
    peer.read(&mut f2);
    f2.handle_input(t(1), &peer.opening());
    peer.read(&mut f2);
    f2.handle_input(t(2), &msg::extended(0, b"d1:md11:ut_metadatai42eee"));
    f2.handle_input(t(2), &peer.data(0));
    assert_eq!(
        peer.read(&mut f2),
        [Sent::UtMetadata {
            ext_id: 42,
            msg_type: 0,
            piece: 1
        }]
    );
    // Turning it off ends the fetch.
    f2.handle_input(t(3), &msg::extended(0, b"d1:md11:ut_metadatai0eee"));
    assert_eq!(failed(&mut f2), Some(FailReason::NoUtMetadata));
}

#[test]
fn rejects_to_a_peer_that_never_reads_are_capped() {
    let peer = Peer::new(info_of_len(100));
    let mut f = Fetch::new(peer.info_hash, FetchConfig::default(), t(0));
    f.handle_input(t(1), &peer.opening());
    let request = msg::request(UT_METADATA_ID, 0);
    for _ in 0..10_000 {
        f.handle_input(t(1), &request);
    }
    assert!(f.pending_output().len() < MAX_OUTPUT_FOR_REJECTS + 64);
    assert!(!f.is_finished());
}

#[test]
fn fail_reasons_display() {
    let reasons = [
        FailReason::NotBitTorrent,
        FailReason::WrongInfoHash,
        FailReason::NoExtensionProtocol,
        FailReason::NoUtMetadata,
        FailReason::NoMetadataSize,
        FailReason::MetadataTooLarge { size: 5 },
        FailReason::Rejected { piece: 1 },
        FailReason::HashMismatch,
        FailReason::MessageTooLong { len: 9 },
        FailReason::Malformed("x"),
        FailReason::Timeout(TimeoutKind::Handshake),
        FailReason::Timeout(TimeoutKind::Piece),
        FailReason::Timeout(TimeoutKind::Total),
        FailReason::Closed,
    ];
    let texts: Vec<_> = reasons.iter().map(|r| alloc::format!("{r}")).collect();
    for (i, a) in texts.iter().enumerate() {
        assert!(!a.is_empty());
        assert!(texts[i + 1..].iter().all(|b| b != a), "{a}");
    }
}

#[test]
fn extended_messages_at_the_cap() {
    let peer = Peer::new(info_of_len(100));
    let config = FetchConfig::default();
    let cap = config.extended_cap();
    // An unknown extension's message of exactly the cap (id and extended id included) passes.
    let at_cap = msg::extended(9, &vec![b'x'; cap - 2]);
    let mut f = Fetch::new(peer.info_hash, config.clone(), t(0));
    f.handle_input(t(1), &with_opening(&peer, &at_cap));
    assert!(!f.is_finished());
    assert_eq!(f.reading, Reading::Header);
    let over = msg::extended(9, &vec![b'x'; cap - 1]);
    assert_eq!(
        fail_after(&with_opening(&peer, &over), config, peer.info_hash),
        Some(FailReason::MessageTooLong {
            len: cap as u64 + 1
        })
    );
}

#[test]
fn messages_at_the_general_cap() {
    let peer = Peer::new(info_of_len(100));
    let config = FetchConfig {
        max_message_len: 40_000,
        ..FetchConfig::default()
    };
    let mut f = Fetch::new(peer.info_hash, config.clone(), t(0));
    f.handle_input(
        t(1),
        &with_opening(&peer, &msg::message(7, &vec![0; 39_999])),
    );
    assert!(!f.is_finished());
    assert_eq!(
        fail_after(
            &with_opening(&peer, &msg::message(7, &vec![0; 40_000])),
            config,
            peer.info_hash
        ),
        Some(FailReason::MessageTooLong { len: 40_001 })
    );
}

#[test]
fn memory_follows_the_data_not_the_announced_size() {
    let ih = Id::new([4; 20]);
    let mut f = Fetch::new(ih, FetchConfig::default(), t(0));
    let mut input = msg::handshake(&ih, &[1; 20], true).to_vec();
    input.extend(msg::extended_handshake(2, Some(10 * 1024 * 1024)));
    f.handle_input(t(1), &input);
    let d = f.download.as_ref().unwrap();
    assert_eq!(d.pieces(), 640);
    assert!(d.pieces.iter().all(Option::is_none));
    // One piece in: one piece held.
    f.handle_input(t(2), &msg::data(1, 3, 10 * 1024 * 1024, &[7; PIECE_LEN]));
    let d = f.download.as_ref().unwrap();
    let held: usize = d.pieces.iter().flatten().map(Vec::len).sum();
    assert_eq!(held, PIECE_LEN);
}
