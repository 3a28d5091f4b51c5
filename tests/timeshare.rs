//! Time-shared physical CPUs (issue 9): VMs marked `time_shared = true` may
//! share CPUs with each other and have more vCPUs than CPUs; each CPU runs
//! its vCPUs in turn (fair share, a 2 ms slice from the EL2 physical timer,
//! WFI gives the CPU away), saving and restoring each vCPU's whole state.

mod common;

use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(120);

use common::config_file;

/// A VM of the hostile guest running `scenario`, time-shared on `cpus`.
fn hostile_vm(name: &str, scenario: &str, vcpus: u32, cpus: &str) -> String {
    format!(
        "[[vm]]\nname = \"{name}\"\nkernel = \"hostile-guest\"\ncmdline = \"hostile={scenario}\"\n\
         vcpus = {vcpus}\nmemory = \"64M\"\ncpus = {cpus}\ntime_shared = true\n"
    )
}

/// Boot, under -icount, one CPU time-shared by a hostile-guest VM `vm`
/// running `scenario` on `vcpus` vCPUs; `run` names the config and the log.
fn boot_on_one_cpu(run: &str, vm: &str, scenario: &str, vcpus: u32) -> common::Run {
    let config = config_file(
        run,
        &format!(
            "[machine]\ncpus = 1\n{}",
            hostile_vm(vm, scenario, vcpus, "[0]")
        ),
    );
    common::boot(
        run,
        &["--icount", "--config", config.to_str().unwrap()],
        TIMEOUT,
    )
}

/// The value of `key` (such as `ticks=`) among the words of `line`.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in {line:?}"))
}

/// `(ticks, checksum)` of each `timeshare: vcpuN ticks=T checksum=C
/// fp-mismatches=0` line with the given prefix; any FP mismatch fails.
fn timeshare_results(output: &str, prefix: &str) -> Vec<(u64, String)> {
    output
        .lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .filter(|l| l.starts_with("timeshare: vcpu"))
        .map(|l| {
            assert_eq!(
                field(l, "fp-mismatches="),
                "0",
                "FP state survived every switch: {l}"
            );
            (
                field(l, "ticks=").parse().unwrap(),
                field(l, "checksum=").to_string(),
            )
        })
        .collect()
}

/// Two VMs on one CPU each get half of it: the same work takes each of them
/// twice as long as it takes one VM alone (0.5 ± 0.05 of the rate), gives
/// the same checksum, and their FP/SIMD registers and FPCR survive every
/// switch. Under -icount, so the figures are exact.
#[test]
fn two_vms_on_one_cpu_get_half_of_it_each() {
    common::build_images();
    let run = boot_on_one_cpu("timeshare-alone", "alone", "timeshare", 1);
    run.assert_clean_exit();
    let single = timeshare_results(&run.output, "");
    assert_eq!(single.len(), 1, "{}", run.tail(20));
    // One VM alone on its CPU: nothing to share, no slice timer.
    assert!(!run.output.contains("time-shares"), "{}", run.tail(20));

    let shared = common::root().join("configs/timeshare-two-vms.toml");
    let run = common::boot(
        "timeshare-two-vms",
        &["--icount", "--config", shared.to_str().unwrap()],
        TIMEOUT,
    );
    run.assert_clean_exit();
    run.assert_hv_line("cpu0 time-shares vCPUs left/0, right/0");
    run.assert_hv_line("vm1 vcpu0 starting on cpu0 (time-shared, slot 0)");
    run.assert_hv_line("vm2 vcpu0 starting on cpu0 (time-shared, slot 1)");
    for name in ["left", "right"] {
        let results = timeshare_results(&run.output, &format!("({name}) "));
        assert_eq!(results.len(), 1, "{}", run.tail(30));
        let (ticks, checksum) = &results[0];
        assert_eq!(checksum, &single[0].1, "the same work, the same result");
        let rate = single[0].0 as f64 / *ticks as f64;
        eprintln!("{name}: {ticks} ticks, rate {rate:.4} of one VM alone");
        assert!(
            (0.45..=0.55).contains(&rate),
            "{name}: rate {rate:.4}\n{}",
            run.tail(30)
        );
        run.assert_line(&format!("({name}) timeshare: PASS"));
    }
}

/// A VM with more vCPUs than CPUs: two vCPUs on one CPU, the second started
/// by PSCI CPU_ON onto the CPU the first runs on, both doing the same work
/// at half speed; the second then waits in WFI, which gives the CPU back.
#[test]
fn a_vm_with_more_vcpus_than_cpus_runs_them_all() {
    common::build_images();
    let run = boot_on_one_cpu("timeshare-smp", "pair", "timeshare-smp", 2);
    run.assert_clean_exit();
    run.assert_hv_line("cpu0 time-shares vCPUs pair/0, pair/1");
    run.assert_hv_line("vm1 vcpu1 starting on cpu0 (time-shared, slot 1)");
    let results = timeshare_results(&run.output, "");
    assert_eq!(results.len(), 2, "{}", run.tail(30));
    assert_eq!(results[0].1, results[1].1);
    run.assert_line("timeshare: PASS");
}

/// Two vCPUs of one VM on one CPU pass a token back and forth, each waiting
/// for its turn in a WFE loop (as a spinlock waiter does). Every pass must
/// reach the other vCPU within about one slice: the waiter cannot keep the
/// CPU longer than its slice, whatever it does. (On hardware WFE traps on a
/// time-shared CPU and hands the CPU over at once; QEMU 7.2's TCG never
/// traps WFE, so here each pass costs a slice.)
#[test]
fn a_waiting_vcpu_hands_the_cpu_over_within_a_slice() {
    common::build_images();
    let run = boot_on_one_cpu("timeshare-pingpong", "pp", "timeshare-pingpong", 2);
    run.assert_clean_exit();
    run.assert_line("timeshare: PASS");
    let line = run
        .output
        .lines()
        .find(|l| l.starts_with("timeshare: pingpong passes="))
        .unwrap_or_else(|| panic!("no pingpong line\n{}", run.tail(20)));
    let count = |key: &str| -> u64 { field(line, key).parse().unwrap() };
    let (passes, ticks) = (count("passes="), count("ticks="));
    // 62.5 MHz counter: a 2 ms slice is 125000 ticks; each pass is two handovers.
    let per_handover = ticks / (2 * passes);
    eprintln!("{passes} passes in {ticks} ticks: {per_handover} ticks per handover");
    assert!(
        per_handover <= 125_000 + 6_250,
        "a handover took {per_handover} ticks, more than a slice"
    );
}

/// A hostile VM flooding exits (hypercalls, MMIO) on the CPU it shares with
/// the bare-metal test guest cannot starve it: the test guest's timer,
/// interrupt and PSCI checks all pass.
#[test]
fn a_flooding_vm_does_not_starve_the_vm_it_shares_a_cpu_with() {
    common::build_images();
    let text = format!(
        "[machine]\ncpus = 1\n{}{}[[vm]]\nname = \"tester\"\nkernel = \"test-guest\"\nvcpus = 1\n\
         memory = \"64M\"\ncpus = [0]\ntime_shared = true\n",
        hostile_vm("hvcs", "hvc-flood", 1, "[0]"),
        hostile_vm("mmios", "mmio-flood", 1, "[0]"),
    );
    let config = config_file("timeshare-flood", &text);
    let run = common::boot(
        "timeshare-flood",
        &["--config", config.to_str().unwrap()],
        TIMEOUT,
    );
    run.assert_clean_exit();
    run.assert_hv_line("cpu0 time-shares vCPUs hvcs/0, mmios/0, tester/0");
    run.assert_line("(tester) test-guest: 16 passed, 0 failed");
}

/// Two Linux VMs with two vCPUs each, time-sharing two CPUs (four vCPUs on
/// two CPUs), boot to their shells; one is rebooted from the hypervisor
/// console while the other runs on, then both power off.
#[test]
fn two_linux_vms_time_share_two_cpus() {
    common::build_images();
    common::fetch_linux();
    let vm = |name: &str| {
        format!(
            "[[vm]]\nname = \"{name}\"\nkernel = \"debian\"\ninitramfs = \"debian\"\n\
             cmdline = \"console=ttyAMA0 rdinit=/init panic=-1 hv.marker={name}-up\"\n\
             vcpus = 2\nmemory = \"256M\"\ncpus = [0, 1]\ntime_shared = true\n"
        )
    };
    let text = format!("[machine]\ncpus = 2\n{}{}", vm("linux1"), vm("linux2"));
    let path = config_file("timeshare-two-linux", &text);
    let escape = "\u{1d}";
    let shell = "type 'poweroff -f'";
    let run = common::boot_with_input(
        "timeshare-two-linux",
        &["--config", path.to_str().unwrap()],
        &[
            (shell, ""),
            (shell, &format!("{escape}reboot linux2\\n")),
            ("VM 'linux2' restarted from its images", ""),
            (shell, &format!("focus linux2\\n{escape}poweroff -f\\n")),
            ("stopped (SYSTEM_OFF)", "echo still-$((40 + 2))\\n"),
            ("still-42", "poweroff -f\\n"),
        ],
        Duration::from_secs(400),
    );
    run.assert_clean_exit();
    run.assert_hv_line("cpu0 time-shares vCPUs linux1/0, linux2/0");
    run.assert_hv_line("cpu1 time-shares vCPUs linux1/1, linux2/1");
    let boots = |name: &str| {
        run.output
            .matches(&format!("({name}) GUEST-MARKER {name}-up"))
            .count()
    };
    assert_eq!(
        (boots("linux1"), boots("linux2")),
        (1, 2),
        "{}",
        run.tail(60)
    );
    run.assert_line("(linux1) still-42");
    run.assert_hv_line("VM 'linux2' stopped (SYSTEM_OFF)");
    run.assert_hv_line("VM 'linux1' stopped (SYSTEM_OFF)");
    run.assert_hv_line("0 VM(s) still running");
}
