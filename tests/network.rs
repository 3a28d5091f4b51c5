//! Virtual network (issue 11): each VM's virtio-net card is plugged into
//! the hypervisor's switch. Two Linux VMs on one network talk HTTP; a VM
//! on another network with the same addresses reaches nobody; a VM that
//! changes its MAC address is not heard (the switch drops spoofed frames).

mod common;

use std::time::Duration;

use common::config_file;

fn linux_vm(name: &str, network: &str, args: &str) -> String {
    format!(
        "[[vm]]\nname = \"{name}\"\nkernel = \"debian\"\ninitramfs = \"debian\"\n\
         cmdline = \"console=ttyAMA0 rdinit=/init panic=-1 {args}\"\n\
         vcpus = 1\nmemory = \"192M\"\nnetwork = \"{network}\"\n\n"
    )
}

#[test]
fn vms_on_one_network_talk_and_no_one_else_hears_them() {
    common::build_images();
    common::fetch_linux();
    let config = config_file(
        "network-four",
        &(linux_vm("server", "lan", "hv.ip=10.0.0.1/24 hv.run=net-server")
            + &linux_vm(
                "client",
                "lan",
                "hv.ip=10.0.0.2/24 hv.peer=10.0.0.1 hv.run=net-client",
            )
            + &linux_vm(
                "outsider",
                "other",
                "hv.ip=10.0.0.3/24 hv.peer=10.0.0.1 hv.run=net-probe",
            )
            + &linux_vm(
                "spoofer",
                "lan",
                "hv.ip=10.0.0.4/24 hv.peer=10.0.0.1 hv.run=net-spoof",
            )),
    );
    let run = common::boot(
        "network-four",
        &["--config", config.to_str().unwrap()],
        Duration::from_secs(240),
    );
    run.assert_clean_exit();
    run.assert_hv_line("NIC 52:54:00:");
    // HTTP over the switch, with the content checked.
    run.assert_line("(client) NET-FETCHED NET-PAGE served by 10.0.0.1/24");
    run.assert_line("(client) NET-PING ok");
    // Same addresses, another network: nothing gets through.
    run.assert_line("(outsider) NET-PROBE unreachable 10.0.0.1");
    // A VM sending with another source address is dropped and counted.
    run.assert_line("(spoofer) NET-SPOOF unreachable 10.0.0.1");
    let spoofed: u64 = run
        .hv_lines()
        .filter(|l| l.starts_with("[hv] net vm4:"))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("spoofed="))
        })
        .filter_map(|n| n.parse::<u64>().ok())
        .sum();
    assert!(
        spoofed >= 3,
        "spoofed frames counted: {spoofed}\n{}",
        run.tail(20)
    );
    // The outsider's frames reached no port: it received nothing but
    // (possibly) nothing at all.
    let outsider_rx: u64 = run
        .hv_lines()
        .filter(|l| l.starts_with("[hv] net vm3:"))
        .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("rx=")))
        .filter_map(|n| n.parse::<u64>().ok())
        .sum();
    assert_eq!(outsider_rx, 0, "{}", run.tail(20));
}
