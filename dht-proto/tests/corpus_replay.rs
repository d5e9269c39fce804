//! Replays every file of the fuzz corpus (`fuzz/corpus/<target>/`) through the same bodies the
//! fuzz targets run, so that ordinary `cargo test` covers them without a fuzzer.

use std::fs;
use std::path::Path;

use dht_proto::fuzzing;

#[test]
fn replay_fuzz_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let mut replayed = 0usize;
    let mut targets = fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|entry| entry.unwrap().path())
        .collect::<Vec<_>>();
    targets.sort();
    for dir in targets {
        let target = dir.file_name().unwrap().to_string_lossy().into_owned();
        let body: fn(&[u8]) = match target.as_str() {
            "bencode" => fuzzing::fuzz_bencode,
            "krpc" => fuzzing::fuzz_krpc,
            "node" => fuzzing::fuzz_node,
            "metadata" => fuzzing::fuzz_metadata,
            // Corpora of targets whose bodies this test does not know yet.
            _ => continue,
        };
        let mut files = fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect::<Vec<_>>();
        files.sort();
        for file in files {
            let data = fs::read(&file).unwrap();
            let result = std::panic::catch_unwind(|| body(&data));
            assert!(result.is_ok(), "corpus file {} fails", file.display());
            replayed += 1;
        }
    }
    assert!(
        replayed >= 40,
        "only {replayed} corpus files found under {}",
        root.display()
    );
}
