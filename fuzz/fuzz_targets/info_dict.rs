#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| dht_std::metadata::fuzz_info_dict(data));
