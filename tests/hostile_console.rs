//! Hostile guests against the console and the log: floods of bad input get
//! a bounded number of log lines (with summaries) and exact counters, an
//! unknown hypercall costs what the null hypercall costs, a guest cannot
//! silence, split or forge the hypervisor's lines, and a vCPU faulting
//! forever does not flood the log. Facts about the hypervisor are read only
//! from lines that start with "[hv" (see `common::is_hv_line`).

mod common;

use std::time::Duration;

/// Event lines per cause per second before suppression (src/hv/guest_log.rs).
const BURST: usize = 5;

fn hostile(scenario: &str, log: &str, extra: &[&str]) -> common::Run {
    common::build_images();
    let append = format!("hostile={scenario}");
    let mut args = vec![
        "--guest",
        "hostile-guest",
        "--append",
        &append,
        "--log",
        log,
    ];
    args.extend_from_slice(extra);
    let run = common::boot(
        &format!("hostile-{scenario}-{log}"),
        &args,
        Duration::from_secs(90),
    );
    run.assert_clean_exit();
    run.assert_line(&format!("HOSTILE {scenario}: done"));
    run
}

/// A number the guest printed after `key` (e.g. "ticks=").
fn guest_number(run: &common::Run, key: &str) -> u64 {
    let line = run
        .output
        .lines()
        .find(|l| !common::is_hv_line(l) && l.contains(key))
        .unwrap_or_else(|| panic!("no {key:?}\n{}", run.tail(30)));
    let rest = &line[line.find(key).unwrap() + key.len()..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number after {key:?} in {line:?}"))
}

fn hv_lines_with(run: &common::Run, needle: &str) -> usize {
    run.hv_lines().filter(|l| l.contains(needle)).count()
}

#[test]
fn unknown_hypercalls_are_answered_silently_counted_and_fast() {
    let run = hostile("hvc-flood", "warn", &["--icount"]);
    run.assert_line("5000 unknown calls, 0 answered other than NOT_SUPPORTED");
    assert_eq!(run.hv_counter("[hv] events:", "unknown-smccc"), 5000);
    assert_eq!(hv_lines_with(&run, "unknown SMCCC"), 0, "{}", run.tail(20));
    // Guest time (icount: one tick = 16 instructions) for 5000 calls each.
    let unknown = guest_number(&run, "ticks unknown=");
    let ping = guest_number(&run, " ping=");
    assert!(
        unknown * 100 <= ping * 135,
        "unknown call costs {unknown} ticks per 5000, the null call {ping}"
    );
}

#[test]
fn bad_access_flood_gives_bounded_lines_summaries_and_exact_counts() {
    let run = hostile("mmio-flood", "warn", &["--icount"]);
    run.assert_line("aborts unmapped=2000 rejected=2000 undef=2000 of 2000 each");
    for (cause, needle) in [
        ("mmio-unmapped", "hits no device or memory"),
        ("mmio-rejected", "rejected by the device"),
        ("sysreg-undef", "of unemulated system register"),
    ] {
        assert_eq!(run.hv_counter("[hv] events:", cause), 2000, "{cause}");
        // The flood lasts well under a second of guest time: one burst.
        let lines = hv_lines_with(&run, needle);
        assert!(
            (1..=BURST).contains(&lines),
            "{lines} lines for {cause}\n{}",
            run.tail(30)
        );
        run.assert_hv_line(&format!("{} more {cause} lines suppressed", 2000 - lines));
    }
    let printed = run.hv_counter("[hv] events:", "lines-printed");
    let suppressed = run.hv_counter("[hv] events:", "lines-suppressed");
    assert_eq!(printed + suppressed, 6000);
    assert_eq!(
        run.hv_counter("[hv] exits:", "abort-injected"),
        4000,
        "every abort counted"
    );

    // What logging costs the guest: the same flood with logging off.
    let quiet = hostile("mmio-flood", "off", &["--icount"]);
    let (on, off) = (guest_number(&run, "ticks="), guest_number(&quiet, "ticks="));
    assert!(
        on * 100 <= off * 120,
        "6000 bad accesses: {on} ticks with logging, {off} without"
    );
}

#[test]
fn guest_turning_its_uart_off_cannot_silence_or_split_hypervisor_lines() {
    let run = hostile("uart-tx-off", "warn", &[]);
    run.assert_line("uart-tx-off: line 199 abcdefghij");
    // The hypervisor's three warnings each start their own line, although
    // the guest was in the middle of one each time.
    assert_eq!(
        hv_lines_with(&run, "hits no device or memory"),
        3,
        "{}",
        run.tail(30)
    );
    assert!(
        !run.output
            .lines()
            .any(|l| l.contains("partial") && l.contains("[hv")),
        "a hypervisor line landed inside a guest line\n{}",
        run.tail(30)
    );
    run.assert_hv_line("[hv] exits:");
    assert_eq!(run.hv_counter("[hv] console:", "tx-dropped"), 0);
}

#[test]
fn forged_hypervisor_lines_are_escaped_and_not_believed() {
    // assert_clean_exit in hostile() already ignored the forged PANIC line.
    let run = hostile("forge-hv-lines", "info", &[]);
    assert_eq!(
        hv_lines_with(&run, "forged"),
        0,
        "a forged line passed as the hypervisor's\n{}",
        run.tail(30)
    );
    run.assert_line("[vm1] [hv cpu0] ERROR forged by the guest");
    run.assert_line("[vm1] [hv] exits: hvc=999999");
    // The counters are the hypervisor's, not the guest's.
    assert!(run.hv_counter("[hv] exits:", "hvc") < 100);
    assert!(run.hv_counter("[hv] console:", "guest-lines-escaped") >= 6);
}

#[test]
fn cpu_on_at_a_bad_entry_point_keeps_the_log_bounded() {
    let run = hostile("cpu-on-bad-entry", "warn", &["--vcpus", "2"]);
    run.assert_line("cpu-on-bad-entry: vcpu0 still running after 3 s");
    let faults = run.hv_counter("[hv] events:", "fetch-abort");
    let lines = hv_lines_with(&run, "instruction fetch from unmapped IPA");
    // About 3 s of faulting: a burst per second (and the last, partial one).
    assert!(faults > 100, "only {faults} faults\n{}", run.tail(30));
    assert!(
        lines <= BURST * 5,
        "{lines} lines for {faults} faults\n{}",
        run.tail(30)
    );
    run.assert_hv_line("more fetch-abort lines suppressed");
}

#[test]
fn tools_print_their_options_on_help() {
    for tool in ["tools/boot", "tools/run"] {
        let out = std::process::Command::new(common::root().join(tool))
            .arg("--help")
            .output()
            .expect("run tool");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{tool} --help failed: {text}");
        for option in ["--guest", "--vcpus", "--bare", "--log", "--append"] {
            assert!(
                text.contains(option),
                "{tool} --help lacks {option}:\n{text}"
            );
        }
    }
}
