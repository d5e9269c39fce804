//! The crawler's coverage in a small simulated network: 1,500 honest nodes announce 300
//! info-hashes over 12 virtual minutes; the crawler (16 ids, default settings) must discover
//! at least 90 % of them by the end. Passive harvest alone finds about 5 % here (run
//! `coverage --no-sample`): the floor holds only with the BEP 51 traversal.

use dht_tests::coverage::{CoverageParams, run};

#[test]
fn the_crawler_discovers_what_the_network_announces() {
    for seed in dht_tests::seeds(&[3]) {
        let mut p = CoverageParams::new(seed, 1500, 300, 12);
        p.ids = 16;
        let report = run(&p).unwrap_or_else(|e| panic!("{e}"));
        println!("{report}");
        let end = report.checkpoints.last().copied().unwrap_or_default();
        assert_eq!(end.announced, 300);
        assert!(
            end.share() >= 0.90,
            "seed {seed}: {} of {} discovered",
            end.discovered,
            end.announced
        );
        assert!(report.by_sample > report.by_passive);
        // A good citizen: at most one query per second to any honest node.
        assert!(report.busiest_per_second <= 1);
        assert!(report.busiest_per_second < report.admission_per_second);
    }
}
