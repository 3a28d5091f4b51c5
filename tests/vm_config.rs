//! VM configuration files (issue 9): `tools/boot --config FILE` turns a TOML
//! file into VM nodes under /chosen (Xen's dom0less binding); the hypervisor
//! validates them, then runs every VM on its own physical CPUs. A VM's
//! SYSTEM_OFF stops only that VM; the machine powers off after the last.

mod common;

use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(90);

use common::config_file;

#[test]
fn two_vms_run_side_by_side_and_stop_one_at_a_time() {
    common::build_images();
    let config = common::root().join("configs/two-test-guests.toml");
    let run = common::boot(
        "config-two-test-guests",
        &["--config", config.to_str().unwrap()],
        TIMEOUT,
    );
    run.assert_clean_exit();
    run.assert_hv_line("VM 'alpha': 1 vCPU(s) on CPUs 0x1, 64 MiB");
    run.assert_hv_line("VM 'beta': 1 vCPU(s) on CPUs 0x2, 64 MiB");
    run.assert_hv_line("vm1 vcpu0 starting on cpu0");
    run.assert_hv_line("vm2 vcpu0 starting on cpu1");
    // Each VM ran the whole test guest on its own machine; every line of
    // its output is tagged with its name.
    run.assert_line("(alpha) test-guest: 16 passed, 0 failed");
    run.assert_line("(beta) test-guest: 16 passed, 0 failed");
    let untagged = run
        .output
        .lines()
        .filter(|l| l.starts_with("CHECK") || l.starts_with("test-guest"))
        .count();
    assert_eq!(
        untagged,
        0,
        "guest lines carry their VM's name\n{}",
        run.tail(40)
    );
    // The first VM to power off stops alone; the other finishes its run,
    // then powers the machine off (the two lines may come in either order
    // when both power off at once).
    let stopped: Vec<&str> = run
        .hv_lines()
        .filter(|l| l.contains("stopped (SYSTEM_OFF)"))
        .collect();
    assert_eq!(stopped.len(), 2, "{}", run.tail(60));
    for left in ["1 VM(s) still running", "0 VM(s) still running"] {
        assert!(stopped.iter().any(|l| l.contains(left)), "{stopped:?}");
    }
    // Every exit of both VMs is counted at the machine's power-off.
    assert!(
        run.hv_counter("[hv] exits:", "hvc") >= 2 * 20,
        "{}",
        run.tail(20)
    );
}

/// Each invalid configuration is refused with the VM and field named, and
/// no VM starts.
#[test]
fn invalid_configurations_name_the_vm_and_field_and_start_nothing() {
    common::build_images();
    let vm = |name: &str, extra: &str| {
        format!("[[vm]]\nname = \"{name}\"\nkernel = \"test-guest\"\nmemory = \"64M\"\n{extra}\n")
    };
    let cases = [
        (
            "cpu-clash",
            format!(
                "[machine]\ncpus = 2\n{}{}",
                vm("one", "cpus = [0]"),
                vm("two", "cpus = [0]")
            ),
            "VM 'two', cpus: CPU 0 already belongs to another VM ('one')",
        ),
        (
            "shared-with-owner",
            format!(
                "[machine]\ncpus = 2\n{}{}",
                vm("owner", "cpus = [0]"),
                vm("sharer", "cpus = [0]\ntime_shared = true")
            ),
            "VM 'sharer', cpus: CPU 0 already belongs to another VM ('owner')",
        ),
        (
            "crowded-cpu",
            format!(
                "[machine]\ncpus = 1\n{}{}",
                vm("five", "vcpus = 5\ncpus = [0]\ntime_shared = true"),
                vm("four", "vcpus = 4\ncpus = [0]\ntime_shared = true")
            ),
            "VM 'four', cpus: CPU 0 would run more than 8 vCPUs",
        ),
        (
            "no-such-cpu",
            format!("[machine]\ncpus = 2\n{}", vm("one", "cpus = [1, 5]")),
            "VM 'one', cpus: CPU 5 does not exist (the machine has 2)",
        ),
        (
            "duplicate-name",
            format!("[machine]\ncpus = 2\n{}{}", vm("same", ""), vm("same", "")),
            "VM 'same', name: two VMs have this name",
        ),
        (
            "too-much-memory",
            format!(
                "[machine]\ncpus = 2\nmemory = \"512M\"\n{}{}",
                vm("small", ""),
                vm("big", "").replace("64M", "480M")
            ),
            "VM 'big', memory: not enough host RAM",
        ),
        (
            "too-many-vcpus",
            format!(
                "[machine]\ncpus = 2\n{}",
                vm("wide", "vcpus = 3\ncpus = [0, 1]")
            ),
            "VM 'wide', cpus: 3 vCPUs on 2 CPU(s) need time-sharing (`time_shared = true`)",
        ),
        (
            "tiny-memory",
            format!(
                "[machine]\ncpus = 1\n{}",
                vm("tiny", "").replace("64M", "8M")
            ),
            "VM 'tiny', memory: 8 MiB is too little",
        ),
    ];
    for (name, text, expected) in cases {
        let path = config_file(name, &text);
        let run = common::boot(
            &format!("config-{name}"),
            &["--config", path.to_str().unwrap()],
            TIMEOUT,
        );
        assert!(!run.timed_out, "{name}: refused at once\n{}", run.tail(20));
        run.assert_hv_line(&format!("boot failed: configuration: {expected}"));
        assert!(
            !run.output.contains("starting on cpu") && !run.output.contains("test-guest:"),
            "{name}: no VM may start\n{}",
            run.tail(20)
        );
    }
}

/// What the host tool cannot encode it reports itself, naming the field.
#[test]
fn the_config_tool_names_unknown_fields_and_missing_files() {
    common::build_images();
    for (name, text, expected) in [
        (
            "unknown-field",
            "[[vm]]\nname = \"a\"\nkernel = \"test-guest\"\nvcpu = 2\n",
            "VM 'a': unknown field(s) vcpu",
        ),
        (
            "missing-kernel-file",
            "[[vm]]\nname = \"a\"\nkernel = \"no/such/Image\"\n",
            "VM 'a', kernel: no such file",
        ),
    ] {
        let path = config_file(name, text);
        let run = common::boot(
            &format!("config-{name}"),
            &["--config", path.to_str().unwrap()],
            TIMEOUT,
        );
        assert_ne!(run.exit_code, Some(0), "{name}\n{}", run.tail(10));
        run.assert_line(expected);
    }
}

/// Two Linux VMs with 2 vCPUs each boot to their shells at the same time;
/// console input goes to the focused VM; the hypervisor console (Ctrl-])
/// lists the VMs, reboots one while the other runs on, moves the focus, and
/// stops a VM; a guest's own SYSTEM_RESET restarts only its VM.
#[test]
fn two_linux_vms_share_the_console_and_stop_or_restart_independently() {
    common::build_images();
    common::fetch_linux();
    let vm = |name: &str, cpus: &str| {
        format!(
            "[[vm]]\nname = \"{name}\"\nkernel = \"debian\"\ninitramfs = \"debian\"\n\
             cmdline = \"console=ttyAMA0 rdinit=/init panic=-1 hv.marker={name}-up\"\n\
             vcpus = 2\nmemory = \"256M\"\ncpus = {cpus}\n"
        )
    };
    let text = format!(
        "[machine]\ncpus = 4\n{}{}",
        vm("linux1", "[0, 1]"),
        vm("linux2", "[2, 3]")
    );
    let path = config_file("two-linux-console", &text);
    let escape = "\u{1d}";
    let shell = "type 'poweroff -f'";
    let run = common::boot_with_input(
        "config-two-linux-console",
        &["--config", path.to_str().unwrap()],
        &[
            // Both shells up.
            (shell, ""),
            (
                shell,
                &format!("{escape}list\\nstop nosuch\\nreboot linux2\\n"),
            ),
            ("VM 'linux2' restarted from its images", ""),
            // linux2 back at its shell: give it the input, and power it off.
            (shell, &format!("focus linux2\\n{escape}poweroff -f\\n")),
            ("stopped (SYSTEM_OFF)", "echo still-$((40 + 2))\\n"),
            ("still-42", "reboot -f\\n"),
            ("VM 'linux1' restarted from its images", ""),
            (shell, &format!("{escape}stop linux1\\n")),
        ],
        Duration::from_secs(500),
    );
    run.assert_clean_exit();
    for name in ["linux1", "linux2"] {
        let marker = format!("({name}) GUEST-MARKER {name}-up");
        let boots = run.output.matches(&marker).count();
        assert_eq!(boots, 2, "{name} booted twice\n{}", run.tail(60));
    }
    run.assert_hv_line("vm1 linux1 running vcpus=2 cpus=0x3 memory=256M");
    run.assert_hv_line("vm2 linux2 running vcpus=2 cpus=0xc memory=256M");
    run.assert_hv_line("console: no VM named 'nosuch'");
    run.assert_hv_line("VM 'linux2' stopped (reboot command)");
    // Input typed after `focus linux2` powered linux2 off, and only linux2.
    run.assert_hv_line("VM 'linux2' stopped (SYSTEM_OFF)");
    run.assert_hv_line("1 VM(s) still running");
    run.assert_hv_line("console input now goes to VM 'linux1'");
    // linux1 ran on, answered input, restarted alone on its own
    // SYSTEM_RESET, and was stopped from the console last.
    run.assert_line("(linux1) still-42");
    run.assert_hv_line("VM 'linux1' stopped (SYSTEM_RESET)");
    run.assert_hv_line("VM 'linux1' stopped (stop command) after");
    run.assert_hv_line("0 VM(s) still running");
}

/// Isolation between VMs: two hostile VMs probe the whole guest-physical
/// space and reach only their own RAM (of different sizes) and their own
/// emulated devices, while a third VM's timer interrupts keep arriving as
/// they should during the flood of exits.
#[test]
fn hostile_vms_reach_only_their_own_memory_and_do_not_disturb_a_third() {
    common::build_images();
    let vm = |name: &str, memory: &str, scenario: &str| {
        format!(
            "[[vm]]\nname = \"{name}\"\nkernel = \"hostile-guest\"\nmemory = \"{memory}\"\n\
             cmdline = \"hostile={scenario}\"\n"
        )
    };
    let text = format!(
        "[machine]\ncpus = 3\n{}{}{}",
        vm("alpha", "64M", "probe-ipa"),
        vm("beta", "32M", "probe-ipa"),
        vm("gamma", "32M", "vtimer-deassert")
    );
    let path = config_file("isolation", &text);
    let run = common::boot(
        "config-isolation",
        &["--config", path.to_str().unwrap()],
        TIMEOUT,
    );
    run.assert_clean_exit();
    let devices = [0x0800_0000u64, 0x0900_0000, 0x0a00_0000, 0x0b00_0000];
    for (name, ram_end) in [("alpha", 0x4400_0000u64), ("beta", 0x4200_0000)] {
        let answered: Vec<&str> = run
            .output
            .lines()
            .filter(|l| l.starts_with(&format!("({name}) probe-ipa: answered")))
            .collect();
        let mut expected: Vec<String> = devices
            .iter()
            .map(|d| format!("({name}) probe-ipa: answered {d:#x}-{:#x}", d + 0x20_0000))
            .collect();
        expected.push(format!(
            "({name}) probe-ipa: answered 0x40000000-{ram_end:#x}"
        ));
        assert_eq!(answered, expected, "{}", run.tail(60));
        run.assert_line(&format!(
            "({name}) probe-ipa: 3068 probes, 0 writes answered where reads aborted"
        ));
    }
    for case in ["disable", "mask", "future"] {
        run.assert_line(&format!(
            "(gamma) vtimer-deassert {case}: fired true, pending after false, delivered 1023"
        ));
    }
    run.assert_line("(gamma) HOSTILE vtimer-deassert: done");
}

/// With several VMs on the console, a guest still cannot forge a
/// hypervisor line: every line it writes starts with its VM's tag.
#[test]
fn tagged_vms_cannot_forge_hypervisor_lines() {
    common::build_images();
    let vm = |name: &str| {
        format!(
            "[[vm]]\nname = \"{name}\"\nkernel = \"hostile-guest\"\nmemory = \"32M\"\n\
             cmdline = \"hostile=forge-hv-lines\"\n"
        )
    };
    let text = format!("[machine]\ncpus = 2\n{}{}", vm("alpha"), vm("beta"));
    let path = config_file("forge", &text);
    let run = common::boot(
        "config-forge",
        &["--config", path.to_str().unwrap(), "--log", "info"],
        TIMEOUT,
    );
    run.assert_clean_exit();
    let forged = run
        .hv_lines()
        .filter(|l| l.contains("forged") || l.contains("hvc=999999"))
        .count();
    assert_eq!(
        forged,
        0,
        "a forged line passed as the hypervisor's\n{}",
        run.tail(40)
    );
    for name in ["alpha", "beta"] {
        run.assert_line(&format!("({name}) [hv cpu0] ERROR forged by the guest"));
        run.assert_line(&format!("({name}) HOSTILE forge-hv-lines: done"));
    }
    assert!(run.hv_counter("[hv] exits:", "hvc") < 200);
}

/// A VM restarted from the hypervisor console finds its RAM zeroed again,
/// to the last byte: with 65 MiB of RAM the last chunk the hypervisor
/// zeroes lazily is short (1 MiB of a 2 MiB chunk), and the guest's first
/// boot leaves a pattern there that its second boot must not see.
#[test]
fn a_restarted_vm_finds_even_a_short_last_ram_chunk_zeroed() {
    common::build_images();
    // A second VM, so that kernels are copied into guest RAM and restarts
    // reload them (a lone VM runs its kernel in place and restarts with the
    // machine).
    let text = "[machine]\ncpus = 2\n[[vm]]\nname = \"rz\"\nkernel = \"hostile-guest\"\n\
                cmdline = \"hostile=rezero\"\nvcpus = 1\nmemory = \"65M\"\n\
                [[vm]]\nname = \"other\"\nkernel = \"test-guest\"\nvcpus = 1\nmemory = \"64M\"\n";
    let path = config_file("rezero", text);
    let escape = "\u{1d}";
    let written = "rezero: pattern written";
    let run = common::boot_with_input(
        "config-rezero",
        &["--config", path.to_str().unwrap()],
        &[
            (written, &format!("{escape}reboot rz\\n")),
            // The hypervisor console is still open.
            (written, "stop rz\\n"),
        ],
        TIMEOUT,
    );
    run.assert_clean_exit();
    run.assert_hv_line("VM 'rz' restarted from its images");
    let clean = "rezero: the last MiB of RAM at 0x44000000 is clean";
    assert_eq!(
        run.output.matches(clean).count(),
        2,
        "both boots find the last MiB clean\n{}",
        run.tail(30)
    );
    assert!(!run.output.contains("rezero: FAIL"), "{}", run.tail(30));
}

/// One VM storms the virtual GIC (SGIs broadcast and to 16 targets, every
/// SPI enabled, routed, set pending and active, its private interrupts set
/// pending) while two VMs with every interrupt enabled listen: one shares
/// the stormer's CPU (time-shared), one has its own. Neither receives a
/// single interrupt; the stormer takes its own.
#[test]
fn sgis_and_gic_writes_never_reach_another_vm() {
    common::build_images();
    let vm = |name: &str, scenario: &str, cpus: &str, shared: bool| {
        format!(
            "[[vm]]\nname = \"{name}\"\nkernel = \"hostile-guest\"\ncmdline = \"hostile={scenario}\"\n\
             vcpus = 1\nmemory = \"64M\"\ncpus = {cpus}\ntime_shared = {shared}\n"
        )
    };
    let text = format!(
        "[machine]\ncpus = 2\n{}{}{}",
        vm("storm", "gic-storm", "[0]", true),
        vm("nextdoor", "irq-quiet", "[0]", true),
        vm("apart", "irq-quiet", "[1]", false)
    );
    let path = config_file("gic-storm", &text);
    let run = common::boot(
        "config-gic-storm",
        &["--config", path.to_str().unwrap()],
        TIMEOUT,
    );
    run.assert_clean_exit();
    let took: u64 = run
        .output
        .lines()
        .find_map(|l| l.strip_prefix("(storm) gic-storm: "))
        .and_then(|l| l.split(", took ").nth(1))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no storm result\n{}", run.tail(30)));
    assert!(took > 0, "the storm reached its own vCPU");
    for name in ["nextdoor", "apart"] {
        run.assert_line(&format!(
            "({name}) irq-quiet: received 0 interrupts in 200 ms"
        ));
    }
}
