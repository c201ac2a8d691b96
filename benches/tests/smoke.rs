//! The benchmark runners run, check what they moved, and report a positive time.

use shmring_benches::{CONTENDERS, bare_round_trips, shmring_round_trips};

#[test]
fn every_contender_moves_its_messages() {
    for contender in CONTENDERS {
        for capacity in [64, 4096] {
            let t = (contender.run)(100_000, capacity);
            assert!(t.as_nanos() > 0, "{} reported no time", contender.name);
        }
    }
}

#[test]
fn round_trips_run() {
    assert!(shmring_round_trips(10_000).as_nanos() > 0);
    assert!(bare_round_trips(10_000).as_nanos() > 0);
}
