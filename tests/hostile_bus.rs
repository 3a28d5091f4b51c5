//! The VM's MMIO bus: an access in a hole between two registered devices'
//! ranges (or just past the last) is an abort at that address and never
//! reaches a neighbouring device.

mod common;

use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn accesses_between_devices_abort_and_reach_no_neighbour() {
    common::build_images();
    let run = common::boot(
        "hostile-bus-holes",
        &[
            "--guest",
            "hostile-guest",
            "--append",
            "hostile=bus-holes",
            "--log",
            "warn",
        ],
        TIMEOUT,
    );
    run.assert_clean_exit();
    run.assert_line("HOSTILE bus-holes: done");
    assert!(
        !run.output.contains("bus-holes: FAIL"),
        "scenario checks failed\n{}",
        run.tail(40)
    );
    run.assert_line("bus-holes: 10 holes, reads aborted=10 writes aborted=10");
    run.assert_line(
        "bus-holes: scratch=0x123456789abcdef scratch-id=0x54434831 virtio-magic=0x74726976",
    );
    run.assert_line("bus-holes: PASS");
    // Each was a hole on the bus, not an access some device refused.
    assert_eq!(run.hv_counter("[hv] events:", "mmio-unmapped"), 20);
    assert_eq!(run.hv_counter("[hv] events:", "mmio-rejected"), 0);
    assert_eq!(run.hv_counter("[hv] exits:", "abort-injected"), 20);
    run.assert_hv_line("hits no device or memory");
}
