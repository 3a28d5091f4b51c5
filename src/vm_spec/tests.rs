use super::*;
use crate::fdt_writer::{FdtWriter, TreeSink};

const MIB: u64 = 1 << 20;

fn machine() -> Machine {
    Machine {
        cpu_count: 4,
        ram: (0x4000_0000, 1 << 30),
        reserved: alloc::vec![(0x4000_0000, 0x20_0000), (0x4800_0000, 0x10_0000)],
        free_ram: 700 * MIB,
        max_vcpus: 8,
    }
}

fn spec(name: &str, kernel_addr: u64) -> VmSpec {
    VmSpec {
        name: name.to_string(),
        vcpus: 1,
        mem_bytes: 256 * MIB,
        cpus: 0,
        kernel: Module {
            addr: kernel_addr,
            size: 20 * MIB,
        },
        initrd: None,
        bootargs: "console=ttyAMA0".to_string(),
        console: true,
        test_device: false,
        time_shared: false,
        disk: None,
        nic: None,
    }
}

fn two() -> Vec<VmSpec> {
    alloc::vec![spec("linux1", 0x4900_0000), spec("linux2", 0x4c00_0000)]
}

fn fails(mut specs: Vec<VmSpec>, vm: &str, field: &str) -> String {
    let err = validate(&mut specs, &machine()).expect_err("accepted");
    assert_eq!((err.vm.as_str(), err.field), (vm, field), "{err}");
    err.to_string()
}

#[test]
fn two_vms_get_disjoint_cpus_in_order() {
    let mut specs = two();
    specs[0].vcpus = 2;
    validate(&mut specs, &machine()).unwrap();
    assert_eq!(specs[0].cpus, 0b0011);
    assert_eq!(specs[1].cpus, 0b0100);
    assert_eq!(specs[0].cpu_of(1), Some(1));
    assert_eq!(specs[1].cpu_of(0), Some(2));
    // Past the VM's CPUs the placement wraps round (time-sharing).
    assert_eq!(specs[1].cpu_of(1), Some(2));
}

#[test]
fn time_shared_vms_share_cpus_and_may_have_more_vcpus_than_cpus() {
    let mut specs = two();
    for spec in specs.iter_mut() {
        spec.time_shared = true;
        spec.cpus = 0b0001;
        spec.vcpus = 2;
    }
    validate(&mut specs, &machine()).unwrap();
    assert_eq!((specs[0].cpus, specs[1].cpus), (1, 1));
    assert_eq!((specs[0].cpu_of(0), specs[0].cpu_of(1)), (Some(0), Some(0)));

    // A partitioned VM cannot take a time-shared VM's CPU, nor the reverse.
    let mut specs = two();
    specs[0].time_shared = true;
    specs[0].cpus = 0b0001;
    specs[1].cpus = 0b0001;
    let message = validate(&mut specs, &machine()).unwrap_err().to_string();
    assert!(
        message.contains("CPU 0 already belongs to another VM"),
        "{message}"
    );

    // A time-shared VM that names no CPU gets every CPU no partitioned VM owns.
    let mut specs = two();
    specs[1].time_shared = true;
    specs[1].vcpus = 8;
    validate(&mut specs, &machine()).unwrap();
    assert_eq!(specs[0].cpus, 0b0001);
    assert_eq!(specs[1].cpus, 0b1110);

    // At most 8 vCPUs share one CPU.
    let mut specs = two();
    for spec in specs.iter_mut() {
        spec.time_shared = true;
        spec.cpus = 0b0001;
        spec.vcpus = 5;
    }
    let message = validate(&mut specs, &machine()).unwrap_err().to_string();
    assert!(
        message.contains("VM 'linux2', cpus: CPU 0 would run more than 8 vCPUs"),
        "{message}"
    );

    // Without time-sharing, more vCPUs than CPUs is refused, and says why.
    let mut specs = two();
    specs[0].cpus = 0b0001;
    specs[0].vcpus = 2;
    let message = validate(&mut specs, &machine()).unwrap_err().to_string();
    assert!(message.contains("time_shared = true"), "{message}");
}

#[test]
fn named_cpus_are_kept_and_others_fill_around_them() {
    let mut specs = two();
    specs[1].cpus = 0b0001;
    specs[0].vcpus = 2;
    validate(&mut specs, &machine()).unwrap();
    assert_eq!(specs[1].cpus, 0b0001);
    assert_eq!(specs[0].cpus, 0b0110);
}

#[test]
fn errors_name_the_vm_and_the_field() {
    let mut s = two();
    s[1].name = "linux1".into();
    assert!(fails(s, "linux1", "name").contains("two VMs"));

    let mut s = two();
    s[0].name = "1bad name".into();
    fails(s, "1bad name", "name");

    let mut s = two();
    s[1].cpus = 1 << 7;
    assert_eq!(
        fails(s, "linux2", "cpus"),
        "VM 'linux2', cpus: CPU 7 does not exist (the machine has 4)"
    );

    let mut s = two();
    s[0].cpus = 0b11;
    s[0].vcpus = 2;
    s[1].cpus = 0b10;
    assert!(fails(s, "linux2", "cpus").contains("'linux1'"));

    let mut s = two();
    s[0].vcpus = 3;
    s[0].cpus = 0b1;
    assert!(fails(s, "linux1", "cpus").contains("time-sharing"));

    let mut s = two();
    s[1].vcpus = 4;
    assert!(fails(s, "linux2", "cpus").contains("3 CPU(s) left"));

    let mut s = two();
    s[0].vcpus = 0;
    fails(s, "linux1", "vcpus");

    let mut s = two();
    s[0].vcpus = 9;
    fails(s, "linux1", "vcpus");

    let mut s = two();
    s[1].mem_bytes = 8 * MIB;
    assert!(fails(s, "linux2", "memory").contains("too little"));

    let mut s = two();
    s[1].mem_bytes = 256 * MIB + 4096;
    fails(s, "linux2", "memory");

    let mut s = two();
    s[1].mem_bytes = 512 * MIB;
    assert!(fails(s, "linux2", "memory").contains("not enough host RAM"));

    let mut s = two();
    s[1].kernel.addr = 0x4900_1000;
    assert!(fails(s, "linux2", "kernel").contains("the kernel of 'linux1'"));

    let mut s = two();
    s[0].initrd = Some(Module {
        addr: 0x4c00_0000 + 19 * MIB,
        size: MIB,
    });
    // linux1's initramfs is image 1, linux2's kernel image 2: the later one is blamed.
    assert!(fails(s, "linux2", "kernel").contains("the initramfs of 'linux1'"));

    let mut s = two();
    s[0].kernel.addr = 0x4800_0000;
    assert!(fails(s, "linux1", "kernel").contains("hypervisor"));

    let mut s = two();
    s[0].kernel.addr = 0x3000_0000;
    assert!(fails(s, "linux1", "kernel").contains("not inside host RAM"));

    let mut s = two();
    s[0].kernel.size = 200 * MIB;
    fails(s, "linux1", "memory");

    assert_eq!(
        validate(&mut [], &machine()).unwrap_err().field,
        "vms",
        "an empty configuration is an error"
    );
}

#[test]
fn nothing_is_assigned_when_validation_fails() {
    let mut s = two();
    s[1].mem_bytes = 8 * MIB;
    let _ = validate(&mut s, &machine());
    assert!(s.iter().all(|s| s.cpus == 0));
}

#[test]
fn nth_set_bit_counts_from_bit_zero() {
    assert_eq!(nth_set_bit(0b1010_0100, 0), Some(2));
    assert_eq!(nth_set_bit(0b1010_0100, 2), Some(7));
    assert_eq!(nth_set_bit(0b1010_0100, 3), None);
    assert_eq!(nth_set_bit(u64::MAX, 63), Some(63));
    assert_eq!(nth_set_bit(0, 0), None);
}

fn domain(w: &mut FdtWriter, name: &str, kernel: u64, initrd: Option<u64>) {
    w.begin_node(name);
    w.property_string_list("compatible", ["xen,domain"]);
    w.property_u32("#address-cells", 2);
    w.property_u32("#size-cells", 2);
    w.property_u32("cpus", 2);
    w.property_cells("memory", [0, 256 * 1024]);
    w.property_empty("vpl011");
    w.property_cells("hvrust,cpus", [1, 3]);
    w.property_string("hvrust,disk", name);
    if name == "db" {
        w.property_empty("hvrust,disk-readonly");
    }
    w.begin_node_at("module", kernel);
    w.property_string_list("compatible", ["multiboot,kernel", "multiboot,module"]);
    w.property_cells("reg", [0, kernel as u32, 0, 0x100_0000]);
    w.property_string("bootargs", "console=ttyAMA0 quiet");
    w.end_node();
    if let Some(initrd) = initrd {
        w.begin_node_at("module", initrd);
        w.property_string_list("compatible", ["multiboot,ramdisk", "multiboot,module"]);
        w.property_cells("reg", [0, initrd as u32, 0, 0x80_0000]);
        w.end_node();
    }
    w.end_node();
}

fn host_tree(build: impl FnOnce(&mut FdtWriter)) -> Vec<u8> {
    let mut w = FdtWriter::new();
    w.begin_node("");
    w.property_u32("#address-cells", 2);
    w.property_u32("#size-cells", 2);
    w.begin_node("chosen");
    w.property_string("bootargs", "hv.log=info");
    build(&mut w);
    w.end_node();
    w.end_node();
    w.finish().unwrap()
}

#[test]
fn dom0less_nodes_become_specifications() {
    let blob = host_tree(|w| {
        domain(w, "web", 0x4900_0000, Some(0x4a00_0000));
        // Not a domain: ignored.
        w.begin_node("other");
        w.property_string_list("compatible", ["vendor,thing"]);
        w.end_node();
        domain(w, "db", 0x4b00_0000, None);
    });
    let tree = fdt::Fdt::new(&blob).unwrap();
    let specs = parse_chosen_vms(&tree).unwrap();
    assert_eq!(specs.len(), 2);
    assert_eq!(
        specs[0],
        VmSpec {
            name: "web".into(),
            vcpus: 2,
            mem_bytes: 256 * MIB,
            cpus: 0b1010,
            kernel: Module {
                addr: 0x4900_0000,
                size: 0x100_0000
            },
            initrd: Some(Module {
                addr: 0x4a00_0000,
                size: 0x80_0000
            }),
            bootargs: "console=ttyAMA0 quiet".into(),
            console: true,
            test_device: false,
            time_shared: false,
            disk: Some(DiskSpec {
                serial: "web".into(),
                read_only: false
            }),
            nic: None,
        }
    );
    assert_eq!(specs[1].name, "db");
    assert_eq!(
        specs[1].disk,
        Some(DiskSpec {
            serial: "db".into(),
            read_only: true
        })
    );
    assert_eq!(specs[1].initrd, None);
}

#[test]
fn a_tree_without_domains_configures_nothing() {
    let blob = host_tree(|_| {});
    assert_eq!(
        parse_chosen_vms(&fdt::Fdt::new(&blob).unwrap()),
        Ok(Vec::new())
    );
}

/// Domain `a` with the `cpus` and `memory` properties asked for, then
/// `module` (a kernel node, or none), closed.
fn domain_a(w: &mut FdtWriter, cpus: bool, memory: bool, module: Option<fn(&mut FdtWriter)>) {
    w.begin_node("a");
    w.property_string_list("compatible", ["xen,domain"]);
    if cpus {
        w.property_u32("cpus", 1);
    }
    if memory {
        w.property_cells("memory", [0, 1024]);
    }
    if let Some(module) = module {
        module(w);
    }
    w.end_node();
}

#[test]
fn malformed_domains_are_reported_by_field() {
    type Build = fn(&mut FdtWriter);
    let cases: [(&str, Build); 4] = [
        ("vcpus", |w| domain_a(w, false, true, None)),
        ("memory", |w| domain_a(w, true, false, None)),
        ("kernel", |w| domain_a(w, true, true, None)),
        ("kernel", |w| {
            // A kernel module whose `reg` is one cell short.
            domain_a(
                w,
                true,
                true,
                Some(|w| {
                    w.begin_node("module@0");
                    w.property_string_list("compatible", ["multiboot,kernel"]);
                    w.property_cells("reg", [0, 1]);
                    w.end_node();
                }),
            )
        }),
    ];
    for (field, build) in cases {
        let blob = host_tree(build);
        let err = parse_chosen_vms(&fdt::Fdt::new(&blob).unwrap()).unwrap_err();
        assert_eq!((err.vm.as_str(), err.field), ("a", field), "{err}");
    }
}

#[test]
fn a_disk_belongs_to_one_vm_and_has_a_usable_serial() {
    let disk = |serial: &str| {
        Some(DiskSpec {
            serial: serial.into(),
            read_only: false,
        })
    };
    let mut specs = two();
    specs[0].disk = disk("linux1");
    specs[1].disk = disk("linux2");
    validate(&mut specs, &machine()).unwrap();
    specs[1].disk = disk("linux1");
    let message = fails(specs.clone(), "linux2", "disk");
    assert!(
        message.contains("disk 'linux1' is already another VM's"),
        "{message}"
    );
    for bad in ["", "twenty-one-characters", "has space"] {
        specs[1].disk = disk(bad);
        fails(specs.clone(), "linux2", "disk");
    }
}

#[test]
fn nics_need_unicast_addresses_of_their_own() {
    let nic = |mac: [u8; 6]| {
        Some(NicSpec {
            network: "lan".into(),
            mac,
        })
    };
    let mut specs = two();
    specs[0].nic = nic([0x52, 0x54, 0, 0, 0, 1]);
    specs[1].nic = nic([0x52, 0x54, 0, 0, 0, 2]);
    validate(&mut specs, &machine()).unwrap();
    specs[1].nic = nic([0x52, 0x54, 0, 0, 0, 1]);
    assert!(fails(specs.clone(), "linux2", "mac").contains("VM 'linux1' has the same address"));
    specs[1].nic = nic([0x01, 0, 0x5e, 0, 0, 1]);
    fails(specs.clone(), "linux2", "mac");
    specs[1].nic = Some(NicSpec {
        network: String::new(),
        mac: [0x52, 0x54, 0, 0, 0, 2],
    });
    fails(specs, "linux2", "network");
}
