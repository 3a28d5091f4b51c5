//! A hostile VM attacks its virtio-net card and the switch
//! (tests/guests/hostile-guest, scenario `net`): spoofed and group source
//! addresses, runts, oversized frames, a header alone, writable transmit
//! buffers, a broadcast flood, a looping chain, data outside its RAM. Two
//! Linux VMs on the same network must go on talking.

mod common;

use std::time::Duration;

use common::config_file;

fn counter(run: &common::Run, line: &str, name: &str) -> u64 {
    run.hv_lines()
        .filter(|l| l.starts_with(line))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix(name).and_then(|n| n.strip_prefix('=')))
        })
        .filter_map(|n| n.parse::<u64>().ok())
        .sum()
}

#[test]
fn a_hostile_nic_hurts_nobody_and_its_bad_frames_are_counted() {
    common::build_images();
    common::fetch_linux();
    let linux = |name: &str, args: &str| {
        format!(
            "[[vm]]\nname = \"{name}\"\nkernel = \"debian\"\ninitramfs = \"debian\"\n\
             cmdline = \"console=ttyAMA0 rdinit=/init panic=-1 {args}\"\n\
             vcpus = 1\nmemory = \"192M\"\nnetwork = \"lan\"\n\n"
        )
    };
    let config = config_file(
        "hostile-net",
        &(String::from(
            "[[vm]]\nname = \"attacker\"\nkernel = \"hostile-guest\"\ncmdline = \"hostile=net\"\n\
             memory = \"64M\"\nnetwork = \"lan\"\n\n",
        ) + &linux("server", "hv.ip=10.0.0.1/24 hv.run=net-server")
            + &linux(
                "client",
                "hv.ip=10.0.0.2/24 hv.peer=10.0.0.1 hv.run=net-client",
            )),
    );
    // Once the attack is over, the hypervisor console's `stats` shows the
    // attacker's card and switch-port counters.
    let run = common::boot_with_input(
        "hostile-net",
        &["--config", config.to_str().unwrap(), "--log", "warn"],
        &[(
            "(attacker) HOSTILE net: done",
            "\u{1d}stats attacker\n\u{1d}",
        )],
        Duration::from_secs(240),
    );
    run.assert_clean_exit();
    assert!(!run.output.contains("FAIL"), "{}", run.tail(60));
    run.assert_line("(attacker) net: 0 failures");
    let oks = run
        .output
        .lines()
        .filter(|l| l.starts_with("(attacker) net: ") && l.ends_with(": ok"))
        .count();
    assert_eq!(oks, 10 + 2 * 2, "{}", run.tail(40));
    // The card returned the four bad chains and forwarded none of them
    // (each counter is summed over the two lines that show it).
    assert_eq!(
        counter(&run, "[hv] net vm1:", "tx-bad"),
        2 * 4,
        "{}",
        run.tail(20)
    );
    // The switch dropped the two spoofed frames and most of the flood.
    assert_eq!(
        counter(&run, "[hv] net vm1:", "spoofed"),
        2 * 2,
        "{}",
        run.tail(20)
    );
    assert!(
        counter(&run, "[hv] net vm1:", "over-budget") > 0,
        "{}",
        run.tail(20)
    );
    // Shown by `stats` while the machine runs, then at power-off.
    let shown = run
        .hv_lines()
        .filter(|l| l.starts_with("[hv] net vm1: tx=1004 tx-bad=4"))
        .count();
    assert_eq!(shown, 2, "{}", run.tail(40));
    // And the two Linux VMs went on talking.
    run.assert_line("(client) NET-FETCHED NET-PAGE served by 10.0.0.1/24");
    run.assert_line("(client) NET-PING ok");
}
