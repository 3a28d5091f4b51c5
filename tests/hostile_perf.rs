//! Hostile-guest scenarios for the exit-path work owned by "perf": a vCPU
//! turned off and on again (its physical CPU parks in WFI in between).

mod common;

use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn cpu_off_then_cpu_on_restarts_the_vcpu_each_time() {
    common::build_images();
    let run = common::boot(
        "hostile-cpu-off-on",
        &[
            "--guest",
            "hostile-guest",
            "--append",
            "hostile=cpu-off-on",
            "--vcpus",
            "2",
            "--log",
            "info",
        ],
        TIMEOUT,
    );
    run.assert_clean_exit();
    assert!(
        !run.output.contains("cpu-off-on: FAIL"),
        "scenario checks failed\n{}",
        run.tail(30)
    );
    run.assert_line("cpu-off-on: round 3: vCPU 1 started and turned off");
    run.assert_line("cpu-off-on: PASS");
}
