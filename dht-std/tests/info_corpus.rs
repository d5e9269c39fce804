//! Replays the `info_dict` fuzz corpus (`fuzz/corpus/info_dict/`) through the fuzz target's
//! body, so that ordinary `cargo test` covers it without a fuzzer.

use std::fs;
use std::path::Path;

#[test]
fn replay_info_dict_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/info_dict");
    let mut files = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .collect::<Vec<_>>();
    files.sort();
    let mut accepted = 0;
    for path in &files {
        let data = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        dht_std::metadata::fuzz_info_dict(&data);
        accepted += usize::from(dht_std::metadata::InfoDict::parse(&data).is_ok());
    }
    assert!(files.len() >= 4, "corpus too small: {}", files.len());
    // The seeds include a single-file and a multi-file dictionary; both must stay accepted.
    assert!(accepted >= 2, "only {accepted} of {} accepted", files.len());
}
