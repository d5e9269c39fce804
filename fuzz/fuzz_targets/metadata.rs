#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| dht_proto::fuzzing::fuzz_metadata(data));
