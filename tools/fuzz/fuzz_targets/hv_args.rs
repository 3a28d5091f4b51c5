//! Any command line and any device-tree blob: parsed or rejected, never a
//! panic. Besides raw bytes, it corrupts real trees (built with the guest
//! DTB writer) so the validator in front of the `fdt` crate sees near-valid input.
#![no_main]
use hvcore::guest_config::{build_guest_dtb, parse_host, parse_hv_args, Device, GuestDtbSpec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_hv_args(text);
    }
    let _ = parse_host(data);
    if data.len() < 4 {
        return;
    }
    let spec = GuestDtbSpec {
        ram_base: 0x4000_0000,
        ram_size: 256 << 20,
        num_vcpus: 1 + usize::from(data[0] % 8),
        cpu_compatible: "arm,cortex-a72".into(),
        gic_dist: (0x0800_0000, 0x1_0000),
        gic_redist_base: 0x080a_0000,
        uart: Some(Device { name: "pl011".into(), base: 0x0900_0000, size: 0x1000, irq: Some(33), compatible: "arm,pl011".into() }),
        virtio: Vec::new(),
        extra_mmio: Vec::new(),
        bootargs: String::from_utf8_lossy(&data[1..data.len().min(40)]).into_owned(),
        initrd: Some((0x4200_0000, 0x4210_0000)),
    };
    let Ok(mut tree) = build_guest_dtb(&spec) else { return };
    // Corrupt the tree: (position, value) pairs from the input.
    for pair in data[1..].chunks_exact(3) {
        let at = usize::from(u16::from_le_bytes([pair[0], pair[1]])) % tree.len();
        tree[at] = pair[2];
    }
    let _ = parse_host(&tree);
});
