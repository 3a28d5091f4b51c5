//! What the hypervisor learns at boot, turned into VM configuration: the
//! host device tree (QEMU's, in x0), the hypervisor's command line, and the
//! device tree each guest is given.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use log::LevelFilter;

use crate::fdt_writer::{node_name, FdtError, FdtWriter};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// The blob is not a device tree.
    BadDeviceTree,
    /// A node the hypervisor needs is missing (named).
    Missing(&'static str),
    /// An `hv.*` option nobody knows (the text of the option).
    UnknownOption(String),
    /// An option's value does not parse (the text of the option).
    BadValue(String),
}

/// A device from the host tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Node name without the unit address, e.g. `pl011`.
    pub name: String,
    pub base: u64,
    pub size: u64,
    /// GIC INTID (SPI n is 32 + n, PPI n is 16 + n).
    pub irq: Option<u32>,
    pub compatible: String,
}

/// The host machine as its device tree describes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostInfo {
    pub ram: Vec<(u64, u64)>,
    pub cpu_count: usize,
    pub cpu_mpidrs: Vec<u64>,
    pub cpu_compatible: String,
    pub gic_dist: (u64, u64),
    pub gic_redist: (u64, u64),
    pub uart: Option<Device>,
    pub virtio_mmio: Vec<Device>,
    /// INTIDs of the architected timer's interrupts, in device-tree order:
    /// secure physical, non-secure physical, virtual, hypervisor (PPIs 13, 14, 11, 10 on QEMU).
    pub timer_irqs: Vec<u32>,
    /// `method` of the /psci node: `"smc"` on QEMU virt with EL2, `"hvc"` inside a VM.
    pub psci_method: Option<String>,
    pub bootargs: String,
    /// `linux,initrd-start` / `linux,initrd-end` from /chosen (32- or 64-bit values).
    pub initrd: Option<(u64, u64)>,
}

fn be_cells(bytes: &[u8]) -> impl Iterator<Item = u32> + '_ {
    bytes
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
}

fn be_number(bytes: &[u8]) -> Option<u64> {
    match bytes.len() {
        4 => Some(u64::from(u32::from_be_bytes(bytes.try_into().ok()?))),
        8 => Some(u64::from_be_bytes(bytes.try_into().ok()?)),
        _ => None,
    }
}

/// GIC INTID of one `<type number flags>` interrupt specifier: SPI n is
/// 32 + n (n < 988), PPI n is 16 + n (n < 16); anything else is not a GIC interrupt.
fn intid_of_specifier(kind: u32, number: u32) -> Option<u32> {
    match kind {
        0 if number < 988 => Some(32 + number),
        1 if number < 16 => Some(16 + number),
        _ => None,
    }
}

/// INTIDs of all interrupts of a 3-cell GIC `interrupts` property, in order
/// (an invalid specifier makes the whole list empty: better none than wrong ones).
fn gic_intids(node: fdt::node::FdtNode) -> Vec<u32> {
    let Some(property) = node.property("interrupts") else {
        return Vec::new();
    };
    let cells: Vec<u32> = be_cells(property.value).collect();
    cells
        .chunks_exact(3)
        .map(|spec| intid_of_specifier(spec[0], spec[1]))
        .collect::<Option<Vec<u32>>>()
        .unwrap_or_default()
}

/// INTID of the first interrupt of a 3-cell GIC `interrupts` property.
fn gic_intid(node: fdt::node::FdtNode) -> Option<u32> {
    let mut cells = be_cells(node.property("interrupts")?.value);
    intid_of_specifier(cells.next()?, cells.next()?)
}

fn device(node: fdt::node::FdtNode) -> Option<Device> {
    let region = node.reg()?.next()?;
    Some(Device {
        name: node.name.split('@').next().unwrap_or(node.name).to_string(),
        base: region.starting_address as usize as u64,
        size: region.size.unwrap_or(0) as u64,
        irq: gic_intid(node),
        compatible: node
            .compatible()
            .map(|c| c.first().to_string())
            .unwrap_or_default(),
    })
}

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Check a device tree's structure before the `fdt` crate walks it: that
/// crate trusts the blob (it panics on string offsets outside the strings
/// block, non-UTF-8 names, truncated tokens, properties after subnodes),
/// so every token, offset, length and name is validated here first.
pub fn validate_dtb(dtb: &[u8]) -> Result<(), ConfigError> {
    let bad = ConfigError::BadDeviceTree;
    if be32(dtb, 0) != Some(0xd00d_feed) {
        return Err(bad);
    }
    let field = |i: usize| {
        be32(dtb, 4 * i)
            .map(|v| v as usize)
            .ok_or(ConfigError::BadDeviceTree)
    };
    let (total, off_struct, off_strings, size_strings, size_struct) =
        (field(1)?, field(2)?, field(3)?, field(8)?, field(9)?);
    let within = |off: usize, len: usize| off.checked_add(len).is_some_and(|end| end <= total);
    if total > dtb.len()
        || total < 40
        || !within(off_struct, size_struct)
        || !within(off_strings, size_strings)
    {
        return Err(bad);
    }
    let structure = &dtb[off_struct..off_struct + size_struct];
    let strings = &dtb[off_strings..off_strings + size_strings];
    let c_str = |bytes: &[u8], at: usize| -> Option<usize> {
        let len = bytes.get(at..)?.iter().position(|b| *b == 0)?;
        core::str::from_utf8(&bytes[at..at + len]).ok()?;
        Some(len)
    };
    // The fdt crate also needs every property before the node's first child,
    // and NOP tokens only right before a node's end.
    const MAX_DEPTH: usize = 16;
    let mut has_child = [false; MAX_DEPTH];
    let mut at = 0;
    let mut depth = 0usize;
    loop {
        let token = be32(structure, at).ok_or(bad.clone())?;
        match token {
            1 => {
                let len = c_str(structure, at + 4).ok_or(bad.clone())?;
                at = (at + 4 + len + 1).div_ceil(4) * 4;
                if depth > 0 {
                    has_child[depth - 1] = true;
                }
                if depth == MAX_DEPTH || (depth == 0 && at > 0 && has_child.iter().any(|c| *c)) {
                    return Err(bad);
                }
                has_child[depth] = false;
                depth += 1;
            }
            2 => {
                depth = depth.checked_sub(1).ok_or(bad.clone())?;
                at += 4;
            }
            3 => {
                if depth == 0 || has_child[depth - 1] {
                    return Err(bad);
                }
                let len = be32(structure, at + 4).ok_or(bad.clone())? as usize;
                let name = be32(structure, at + 8).ok_or(bad.clone())? as usize;
                let name_len = c_str(strings, name).ok_or(bad.clone())?;
                let cells_property = matches!(
                    &strings[name..name + name_len],
                    b"#address-cells" | b"#size-cells" | b"#interrupt-cells"
                );
                // The fdt crate reads these as a 32- or 64-bit number and panics otherwise.
                if cells_property && !matches!(len, 4 | 8) {
                    return Err(bad);
                }
                structure
                    .get(at + 12..(at + 12).checked_add(len).ok_or(bad.clone())?)
                    .ok_or(bad.clone())?;
                at = (at + 12 + len).div_ceil(4) * 4;
            }
            4 if be32(structure, at + 4) == Some(2) || be32(structure, at + 4) == Some(4) => {
                at += 4
            }
            9 if depth == 0 => return Ok(()),
            _ => return Err(bad),
        }
    }
}

/// Read the host description. The tree comes from the machine (QEMU), not
/// a guest, but it is validated all the same (see [`validate_dtb`]).
pub fn parse_host(dtb: &[u8]) -> Result<HostInfo, ConfigError> {
    validate_dtb(dtb)?;
    let tree = fdt::Fdt::new(dtb).map_err(|_| ConfigError::BadDeviceTree)?;
    let mut host = HostInfo::default();
    for node in tree.all_nodes() {
        let is_memory = node.property("device_type").and_then(|p| p.as_str()) == Some("memory");
        if is_memory {
            for region in node.reg().into_iter().flatten() {
                host.ram.push((
                    region.starting_address as usize as u64,
                    region.size.unwrap_or(0) as u64,
                ));
            }
        }
    }
    if host.ram.is_empty() {
        return Err(ConfigError::Missing("/memory"));
    }
    // Not `Fdt::cpus()`: it panics when /cpus is missing.
    let cpus = tree
        .find_node("/cpus")
        .ok_or(ConfigError::Missing("/cpus"))?;
    for cpu in cpus.children() {
        if cpu.property("device_type").and_then(|p| p.as_str()) != Some("cpu") {
            continue;
        }
        let Some(mpidr) = cpu.property("reg").and_then(|p| be_number(p.value)) else {
            continue;
        };
        host.cpu_mpidrs.push(mpidr);
        if host.cpu_compatible.is_empty() {
            if let Some(c) = cpu.property("compatible").and_then(|p| p.as_str()) {
                host.cpu_compatible = c.to_string();
            }
        }
    }
    host.cpu_count = host.cpu_mpidrs.len();
    if host.cpu_count == 0 {
        return Err(ConfigError::Missing("/cpus"));
    }
    let gic = tree
        .find_compatible(&["arm,gic-v3"])
        .ok_or(ConfigError::Missing("arm,gic-v3"))?;
    let mut regs = gic.reg().ok_or(ConfigError::Missing("GIC reg"))?;
    let dist = regs.next().ok_or(ConfigError::Missing("GIC distributor"))?;
    let redist = regs
        .next()
        .ok_or(ConfigError::Missing("GIC redistributors"))?;
    host.gic_dist = (
        dist.starting_address as usize as u64,
        dist.size.unwrap_or(0) as u64,
    );
    host.gic_redist = (
        redist.starting_address as usize as u64,
        redist.size.unwrap_or(0) as u64,
    );
    host.uart = tree.find_compatible(&["arm,pl011"]).and_then(device);
    for node in tree.all_nodes() {
        if node
            .compatible()
            .is_some_and(|c| c.all().any(|s| s == "virtio,mmio"))
        {
            if let Some(d) = device(node) {
                host.virtio_mmio.push(d);
            }
        }
    }
    if let Some(timer) = tree.find_compatible(&["arm,armv8-timer"]) {
        host.timer_irqs = gic_intids(timer);
    }
    host.psci_method = tree
        .find_node("/psci")
        .and_then(|psci| psci.property("method"))
        .and_then(|method| method.as_str())
        .map(String::from);
    if let Some(chosen) = tree.find_node("/chosen") {
        host.bootargs = chosen
            .property("bootargs")
            .and_then(|p| p.as_str())
            .unwrap_or("")
            .to_string();
        let start = chosen
            .property("linux,initrd-start")
            .and_then(|p| be_number(p.value));
        let end = chosen
            .property("linux,initrd-end")
            .and_then(|p| be_number(p.value));
        if let (Some(start), Some(end)) = (start, end) {
            if end > start {
                host.initrd = Some((start, end));
            }
        }
    }
    Ok(host)
}

/// The hypervisor's own options from its command line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HvArgs {
    /// `hv.kernel=ADDR,SIZE`: where the guest kernel Image waits in host RAM.
    pub guest_kernel: Option<(u64, u64)>,
    /// `hv.vcpus=N`.
    pub guest_vcpus: Option<usize>,
    /// `hv.mem=SIZE` (K/M/G suffixes, a whole number of MiB), in MiB.
    pub guest_mem_mib: Option<u64>,
    /// `hv.log=off|error|warn|info|debug|trace`.
    pub log_level: Option<LevelFilter>,
    /// `hv.testdev=on`: give the guest the scratch test device.
    pub test_device: bool,
    /// `hv.s2blocks=on`: map guest RAM at stage 2 with 2 MiB/1 GiB blocks
    /// (best on hardware). Off by default: under QEMU's TCG, blocks make
    /// every guest TLB invalidation by address flush the whole software TLB.
    pub stage2_blocks: bool,
    /// Everything after ` -- `: the guest kernel's command line.
    pub guest_bootargs: String,
}

/// A number in decimal or `0x` hexadecimal.
fn parse_number(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// A size with an optional K/M/G suffix, in bytes.
fn parse_size(s: &str) -> Option<u64> {
    let (digits, shift) = match s.as_bytes().last()? {
        b'K' | b'k' => (&s[..s.len() - 1], 10),
        b'M' | b'm' => (&s[..s.len() - 1], 20),
        b'G' | b'g' => (&s[..s.len() - 1], 30),
        _ => (s, 0),
    };
    parse_number(digits)?.checked_mul(1 << shift)
}

/// Parse `hv.* ... -- guest arguments`. Words that are not `hv.*` before the
/// `--` are ignored (QEMU or a boot loader may add some).
pub fn parse_hv_args(bootargs: &str) -> Result<HvArgs, ConfigError> {
    let (own, guest) = match bootargs.split_once(" -- ") {
        Some((own, guest)) => (own, guest.trim()),
        None => (
            bootargs
                .strip_suffix(" --")
                .or_else(|| bootargs.strip_suffix("--"))
                .unwrap_or(bootargs),
            "",
        ),
    };
    let mut args = HvArgs {
        guest_bootargs: guest.to_string(),
        ..HvArgs::default()
    };
    for word in own.split_whitespace() {
        let Some(option) = word.strip_prefix("hv.") else {
            continue;
        };
        let bad = || ConfigError::BadValue(word.to_string());
        let (key, value) = option.split_once('=').ok_or_else(bad)?;
        match key {
            "kernel" => {
                let (addr, size) = value.split_once(',').ok_or_else(bad)?;
                let addr = parse_number(addr).ok_or_else(bad)?;
                let size = parse_size(size).filter(|s| *s > 0).ok_or_else(bad)?;
                addr.checked_add(size).ok_or_else(bad)?;
                args.guest_kernel = Some((addr, size));
            }
            "vcpus" => {
                args.guest_vcpus = Some(
                    parse_number(value)
                        .and_then(|n| usize::try_from(n).ok())
                        .filter(|n| *n > 0)
                        .ok_or_else(bad)?,
                )
            }
            "mem" => {
                // Whole MiB only: rounding a typo like `hv.mem=512K` down to 0 or
                // `1536K` to 1 MiB silently would hide it.
                args.guest_mem_mib = Some(
                    parse_size(value)
                        .filter(|b| *b > 0 && b.trailing_zeros() >= 20)
                        .map(|b| b >> 20)
                        .ok_or_else(bad)?,
                )
            }
            "log" => {
                args.log_level = Some(match value {
                    "off" => LevelFilter::Off,
                    "error" => LevelFilter::Error,
                    "warn" => LevelFilter::Warn,
                    "info" => LevelFilter::Info,
                    "debug" => LevelFilter::Debug,
                    "trace" => LevelFilter::Trace,
                    _ => return Err(bad()),
                })
            }
            "testdev" => {
                args.test_device = match value {
                    "on" => true,
                    "off" => false,
                    _ => return Err(bad()),
                }
            }
            "s2blocks" => {
                args.stage2_blocks = match value {
                    "on" => true,
                    "off" => false,
                    _ => return Err(bad()),
                }
            }
            _ => return Err(ConfigError::UnknownOption(word.to_string())),
        }
    }
    Ok(args)
}

/// What a guest's device tree describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestDtbSpec {
    pub ram_base: u64,
    pub ram_size: u64,
    pub num_vcpus: usize,
    pub cpu_compatible: String,
    pub gic_dist: (u64, u64),
    /// Redistributors: 128 KiB per vCPU from here.
    pub gic_redist_base: u64,
    /// The UART given to the guest (assigned or emulated), at its guest address.
    pub uart: Option<Device>,
    pub virtio: Vec<Device>,
    /// Other emulated MMIO devices (e.g. the test scratch device).
    pub extra_mmio: Vec<Device>,
    pub bootargs: String,
    /// Initramfs guest-physical `[start, end)` (end > start).
    pub initrd: Option<(u64, u64)>,
}

const GIC_PHANDLE: u32 = 1;
const CLOCK_PHANDLE: u32 = 2;
const GICR_FRAME: u64 = 0x2_0000;
const MAX_VCPUS: usize = 8;

fn reg(w: &mut FdtWriter, base: u64, size: u64) {
    w.property_cells(
        "reg",
        &[
            (base >> 32) as u32,
            base as u32,
            (size >> 32) as u32,
            size as u32,
        ],
    );
}

/// SPI interrupt cells for a device (`<0 spi flags>`), if it has an SPI.
fn spi_cells(device: &Device, flags: u32) -> Option<[u32; 3]> {
    let spi = device.irq?.checked_sub(32)?;
    Some([0, spi, flags])
}

/// The device tree a guest boots with: its memory, its vCPUs (PSCI over
/// HVC), the virtual GICv3 and timer, and only the devices it is given.
pub fn build_guest_dtb(spec: &GuestDtbSpec) -> Result<Vec<u8>, FdtError> {
    let empty_initrd = spec.initrd.is_some_and(|(start, end)| end <= start);
    if spec.num_vcpus == 0 || spec.num_vcpus > MAX_VCPUS || spec.ram_size == 0 || empty_initrd {
        return Err(FdtError::InvalidSpec);
    }
    let mut w = FdtWriter::new();
    w.begin_node("");
    w.property_u32("#address-cells", 2);
    w.property_u32("#size-cells", 2);
    w.property_string("compatible", "linux,dummy-virt");
    w.property_string("model", "hvrust virtual machine");
    w.property_u32("interrupt-parent", GIC_PHANDLE);

    w.begin_node(&node_name("memory", spec.ram_base));
    w.property_string("device_type", "memory");
    reg(&mut w, spec.ram_base, spec.ram_size);
    w.end_node();

    w.begin_node("cpus");
    w.property_u32("#address-cells", 1);
    w.property_u32("#size-cells", 0);
    for cpu in 0..spec.num_vcpus {
        w.begin_node(&node_name("cpu", cpu as u64));
        w.property_string("device_type", "cpu");
        w.property_string(
            "compatible",
            if spec.cpu_compatible.is_empty() {
                "arm,armv8"
            } else {
                &spec.cpu_compatible
            },
        );
        w.property_u32("reg", cpu as u32);
        w.property_string("enable-method", "psci");
        w.end_node();
    }
    w.end_node();

    w.begin_node("psci");
    w.property_string_list("compatible", &["arm,psci-1.0", "arm,psci-0.2"]);
    w.property_string("method", "hvc");
    w.end_node();

    w.begin_node(&node_name("intc", spec.gic_dist.0));
    w.property_string("compatible", "arm,gic-v3");
    w.property_u32("#interrupt-cells", 3);
    w.property_u32("#address-cells", 2);
    w.property_u32("#size-cells", 2);
    w.property_empty("ranges");
    w.property_empty("interrupt-controller");
    w.property_u32("#redistributor-regions", 1);
    let redist_size = spec.num_vcpus as u64 * GICR_FRAME;
    let (d, ds, r) = (spec.gic_dist.0, spec.gic_dist.1, spec.gic_redist_base);
    w.property_cells(
        "reg",
        &[
            (d >> 32) as u32,
            d as u32,
            (ds >> 32) as u32,
            ds as u32,
            (r >> 32) as u32,
            r as u32,
            (redist_size >> 32) as u32,
            redist_size as u32,
        ],
    );
    w.property_u32("phandle", GIC_PHANDLE);
    w.end_node();

    w.begin_node("timer");
    w.property_string_list("compatible", &["arm,armv8-timer", "arm,armv7-timer"]);
    // Secure physical, non-secure physical, virtual, hypervisor: PPIs 13, 14, 11, 10, level-high.
    w.property_cells("interrupts", &[1, 13, 4, 1, 14, 4, 1, 11, 4, 1, 10, 4]);
    w.property_empty("always-on");
    w.end_node();

    if let Some(uart) = &spec.uart {
        w.begin_node("apb-pclk");
        w.property_string("compatible", "fixed-clock");
        w.property_u32("#clock-cells", 0);
        w.property_u32("clock-frequency", 24_000_000);
        w.property_string("clock-output-names", "clk24mhz");
        w.property_u32("phandle", CLOCK_PHANDLE);
        w.end_node();

        w.begin_node(&node_name("pl011", uart.base));
        w.property_string_list("compatible", &["arm,pl011", "arm,primecell"]);
        reg(&mut w, uart.base, uart.size.max(0x1000));
        if let Some(cells) = spi_cells(uart, 4) {
            w.property_cells("interrupts", &cells);
        }
        w.property_cells("clocks", &[CLOCK_PHANDLE, CLOCK_PHANDLE]);
        w.property_string_list("clock-names", &["uartclk", "apb_pclk"]);
        w.end_node();
    }

    for dev in &spec.virtio {
        w.begin_node(&node_name("virtio_mmio", dev.base));
        w.property_string("compatible", "virtio,mmio");
        reg(&mut w, dev.base, dev.size);
        if let Some(cells) = spi_cells(dev, 1) {
            w.property_cells("interrupts", &cells);
        }
        w.property_empty("dma-coherent");
        w.end_node();
    }

    for dev in &spec.extra_mmio {
        w.begin_node(&node_name(&dev.name, dev.base));
        w.property_string("compatible", &dev.compatible);
        reg(&mut w, dev.base, dev.size);
        w.end_node();
    }

    w.begin_node("chosen");
    w.property_string("bootargs", &spec.bootargs);
    if let Some(uart) = &spec.uart {
        w.property_string(
            "stdout-path",
            &alloc::format!("/{}", node_name("pl011", uart.base)),
        );
    }
    if let Some((start, end)) = spec.initrd {
        w.property_u64("linux,initrd-start", start);
        w.property_u64("linux,initrd-end", end);
    }
    w.end_node();

    w.end_node();
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qemu_like_host_dtb() -> Vec<u8> {
        // Mirrors `qemu-system-aarch64 -machine virt,virtualization=on,gic-version=3,dumpdtb=...`.
        let mut w = FdtWriter::new();
        w.begin_node("");
        w.property_u32("#address-cells", 2);
        w.property_u32("#size-cells", 2);
        w.property_u32("interrupt-parent", 0x8005);
        w.begin_node("memory@40000000");
        w.property_string("device_type", "memory");
        reg(&mut w, 0x4000_0000, 0x4000_0000);
        w.end_node();
        w.begin_node("pl011@9000000");
        w.property_string_list("compatible", &["arm,pl011", "arm,primecell"]);
        reg(&mut w, 0x0900_0000, 0x1000);
        w.property_cells("interrupts", &[0, 1, 4]);
        w.end_node();
        w.begin_node("virtio_mmio@a000000");
        w.property_string("compatible", "virtio,mmio");
        reg(&mut w, 0x0a00_0000, 0x200);
        w.property_cells("interrupts", &[0, 16, 1]);
        w.end_node();
        w.begin_node("intc@8000000");
        w.property_string("compatible", "arm,gic-v3");
        w.property_u32("#address-cells", 2);
        w.property_u32("#size-cells", 2);
        w.property_cells(
            "reg",
            &[0, 0x0800_0000, 0, 0x1_0000, 0, 0x080a_0000, 0, 0xf6_0000],
        );
        w.property_u32("phandle", 0x8005);
        w.end_node();
        w.begin_node("cpus");
        w.property_u32("#address-cells", 1);
        w.property_u32("#size-cells", 0);
        for i in 0..4 {
            w.begin_node(&node_name("cpu", i));
            w.property_string("device_type", "cpu");
            w.property_string("compatible", "arm,cortex-a72");
            w.property_u32("reg", i as u32);
            w.end_node();
        }
        w.end_node();
        w.begin_node("chosen");
        w.property_string(
            "bootargs",
            "hv.kernel=0x49000000,0x1000 hv.vcpus=2 -- console=ttyAMA0",
        );
        w.property_u64("linux,initrd-start", 0x4800_0000);
        w.property_u64("linux,initrd-end", 0x4810_0000);
        w.end_node();
        w.end_node();
        w.finish().unwrap()
    }

    #[test]
    fn reads_the_qemu_virt_tree() {
        let host = parse_host(&qemu_like_host_dtb()).unwrap();
        assert_eq!(host.ram, [(0x4000_0000, 0x4000_0000)]);
        assert_eq!(host.cpu_count, 4);
        assert_eq!(host.cpu_mpidrs, [0, 1, 2, 3]);
        assert_eq!(host.cpu_compatible, "arm,cortex-a72");
        assert_eq!(host.gic_dist, (0x0800_0000, 0x1_0000));
        assert_eq!(host.gic_redist, (0x080a_0000, 0xf6_0000));
        let uart = host.uart.unwrap();
        assert_eq!(
            (uart.name.as_str(), uart.base, uart.irq),
            ("pl011", 0x0900_0000, Some(33))
        );
        assert_eq!(host.virtio_mmio[0].irq, Some(48));
        assert_eq!(host.initrd, Some((0x4800_0000, 0x4810_0000)));
        assert!(host.bootargs.starts_with("hv.kernel="));
        assert_eq!(parse_host(&[0u8; 64]), Err(ConfigError::BadDeviceTree));
    }

    /// QEMU's own tree, made with
    /// `qemu-system-aarch64 -machine virt,virtualization=on,gic-version=3,dumpdtb=virt.dtb
    /// -cpu cortex-a72 -smp 4 -m 1G -kernel K -initrd I -append A` (I: 4096 bytes;
    /// A: the hv.* line checked below), then the random `rng-seed` and `kaslr-seed` removed
    /// with `fdtput -d` and the 1 MiB padding with `dtc -I dtb -O dtb`.
    const QEMU_VIRT_DTB: &[u8] = include_bytes!("../tests/fixtures/qemu-virt-gicv3-smp4.dtb");

    #[test]
    fn reads_a_real_qemu_virt_tree() {
        let host = parse_host(QEMU_VIRT_DTB).unwrap();
        assert_eq!(host.ram, [(0x4000_0000, 0x4000_0000)]);
        assert_eq!(
            (host.cpu_count, host.cpu_mpidrs.as_slice()),
            (4, &[0, 1, 2, 3][..])
        );
        assert_eq!(host.cpu_compatible, "arm,cortex-a72");
        assert_eq!(host.gic_dist, (0x0800_0000, 0x1_0000));
        assert_eq!(host.gic_redist, (0x080a_0000, 0xf6_0000));
        assert_eq!(
            host.uart,
            Some(Device {
                name: "pl011".into(),
                base: 0x0900_0000,
                size: 0x1000,
                irq: Some(33),
                compatible: "arm,pl011".into(),
            })
        );
        assert_eq!(host.virtio_mmio.len(), 32);
        let bases: Vec<u64> = host.virtio_mmio.iter().map(|d| d.base).collect();
        let intids: Vec<Option<u32>> = host.virtio_mmio.iter().map(|d| d.irq).collect();
        for slot in 0..32u32 {
            assert!(bases.contains(&(0x0a00_0000 + 0x200 * u64::from(slot))));
            assert!(intids.contains(&Some(48 + slot)));
        }
        assert!(host.virtio_mmio.iter().all(|d| d.size == 0x200));
        assert_eq!(host.timer_irqs, [29, 30, 27, 26]);
        assert_eq!(host.psci_method.as_deref(), Some("smc"));
        // QEMU writes the initrd bounds as single 32-bit cells.
        assert_eq!(host.initrd, Some((0x4800_0000, 0x4800_1000)));
        let args = parse_hv_args(&host.bootargs).unwrap();
        assert_eq!(args.guest_kernel, Some((0x4800_0000, 0x1a0_0000)));
        assert_eq!((args.guest_vcpus, args.guest_mem_mib), (Some(2), Some(256)));
        assert_eq!(args.log_level, Some(LevelFilter::Info));
        assert_eq!(args.guest_bootargs, "console=ttyAMA0 rdinit=/init");
    }

    #[test]
    fn damaged_real_trees_are_refused_or_read_without_panicking() {
        for len in 0..QEMU_VIRT_DTB.len() {
            assert!(
                parse_host(&QEMU_VIRT_DTB[..len]).is_err(),
                "truncated to {len}"
            );
        }
        // One corruption at every third byte (the fuzz target tries many more): values
        // that are tokens, lengths and offsets in disguise, and a flipped top bit.
        let mut tree = QEMU_VIRT_DTB.to_vec();
        for at in (0..tree.len()).step_by(3) {
            let original = tree[at];
            tree[at] = [0x00, 0x01, 0x02, 0x03, 0x09, 0xff, original ^ 0x80][at % 7];
            let _ = parse_host(&tree);
            tree[at] = original;
        }
    }

    #[test]
    fn interrupt_specifiers_map_to_gic_intids() {
        assert_eq!(intid_of_specifier(0, 0), Some(32));
        assert_eq!(intid_of_specifier(0, 987), Some(1019));
        assert_eq!(intid_of_specifier(0, 988), None, "INTIDs 1020+ are special");
        assert_eq!(intid_of_specifier(1, 15), Some(31));
        assert_eq!(intid_of_specifier(1, 16), None);
        assert_eq!(intid_of_specifier(2, 0), None, "not an SPI or PPI");
        assert_eq!(intid_of_specifier(0, u32::MAX), None);
    }

    #[test]
    fn memory_sizes_are_whole_mebibytes() {
        let mem = |text: &str| parse_hv_args(text).map(|a| a.guest_mem_mib);
        assert_eq!(mem("hv.mem=1G"), Ok(Some(1024)));
        assert_eq!(mem("hv.mem=0x10000000"), Ok(Some(256)));
        assert_eq!(mem("hv.mem=2048K"), Ok(Some(2)));
        assert_eq!(
            mem("hv.mem=1536K"),
            Err(ConfigError::BadValue("hv.mem=1536K".into()))
        );
        assert_eq!(
            mem("hv.mem=512K"),
            Err(ConfigError::BadValue("hv.mem=512K".into()))
        );
        assert_eq!(
            mem("hv.mem=0"),
            Err(ConfigError::BadValue("hv.mem=0".into()))
        );
        assert_eq!(
            mem("hv.mem=99999999999G"),
            Err(ConfigError::BadValue("hv.mem=99999999999G".into()))
        );
    }

    #[test]
    fn parses_the_command_line() {
        let a = parse_hv_args("hv.kernel=0x49000000,27M hv.vcpus=4 hv.mem=256M hv.log=warn hv.testdev=on -- console=ttyAMA0 rdinit=/init").unwrap();
        assert_eq!(a.guest_kernel, Some((0x4900_0000, 27 << 20)));
        assert_eq!(
            (a.guest_vcpus, a.guest_mem_mib, a.log_level, a.test_device),
            (Some(4), Some(256), Some(LevelFilter::Warn), true)
        );
        assert_eq!(a.guest_bootargs, "console=ttyAMA0 rdinit=/init");
        assert!(!a.stage2_blocks, "stage-2 blocks are off by default");
        assert!(parse_hv_args("hv.s2blocks=on").unwrap().stage2_blocks);
        assert!(!parse_hv_args("hv.s2blocks=off").unwrap().stage2_blocks);
        assert_eq!(
            parse_hv_args("hv.s2blocks=yes"),
            Err(ConfigError::BadValue("hv.s2blocks=yes".into()))
        );
        assert_eq!(
            parse_hv_args("hv.vcpu=4"),
            Err(ConfigError::UnknownOption("hv.vcpu=4".into()))
        );
        assert_eq!(
            parse_hv_args("hv.mem=lots"),
            Err(ConfigError::BadValue("hv.mem=lots".into()))
        );
        assert_eq!(
            parse_hv_args("hv.kernel=0xffffffffffffffff,2"),
            Err(ConfigError::BadValue(
                "hv.kernel=0xffffffffffffffff,2".into()
            ))
        );
        assert_eq!(
            parse_hv_args("hv.vcpus=0"),
            Err(ConfigError::BadValue("hv.vcpus=0".into()))
        );
        assert_eq!(parse_hv_args("").unwrap(), HvArgs::default());
    }

    fn spec() -> GuestDtbSpec {
        GuestDtbSpec {
            ram_base: 0x4000_0000,
            ram_size: 256 << 20,
            num_vcpus: 4,
            cpu_compatible: "arm,cortex-a72".into(),
            gic_dist: (0x0800_0000, 0x1_0000),
            gic_redist_base: 0x080a_0000,
            uart: Some(Device {
                name: "pl011".into(),
                base: 0x0900_0000,
                size: 0x1000,
                irq: Some(33),
                compatible: "arm,pl011".into(),
            }),
            virtio: Vec::new(),
            extra_mmio: alloc::vec![Device {
                name: "scratch".into(),
                base: 0x0b00_0000,
                size: 0x1000,
                irq: None,
                compatible: "hvrust,scratch".into()
            }],
            bootargs: "console=ttyAMA0".into(),
            initrd: Some((0x4200_0000, 0x4210_0000)),
        }
    }

    #[test]
    fn guest_tree_describes_exactly_the_vm() {
        let blob = build_guest_dtb(&spec()).unwrap();
        let tree = fdt::Fdt::new(&blob).unwrap();
        let regions: Vec<_> = tree
            .memory()
            .regions()
            .map(|r| (r.starting_address as usize, r.size))
            .collect();
        assert_eq!(regions, [(0x4000_0000, Some(256 << 20))]);
        assert_eq!(tree.cpus().count(), 4);
        assert_eq!(
            tree.find_node("/psci")
                .unwrap()
                .property("method")
                .unwrap()
                .as_str(),
            Some("hvc")
        );
        let gic = tree.find_compatible(&["arm,gic-v3"]).unwrap();
        let gic_regs: Vec<_> = gic
            .reg()
            .unwrap()
            .map(|r| (r.starting_address as usize, r.size))
            .collect();
        assert_eq!(
            gic_regs,
            [
                (0x0800_0000, Some(0x1_0000)),
                (0x080a_0000, Some(4 * 0x2_0000))
            ]
        );
        assert_eq!(tree.chosen().bootargs(), Some("console=ttyAMA0"));
        assert_eq!(
            tree.chosen().stdout().map(|n| n.name),
            Some("pl011@9000000")
        );
        let host_view = parse_host(&blob).unwrap();
        assert_eq!(host_view.initrd, Some((0x4200_0000, 0x4210_0000)));
        assert_eq!(host_view.uart.unwrap().irq, Some(33));
        assert!(tree.find_node("/scratch@b000000").is_some());
        assert!(tree.find_compatible(&["virtio,mmio"]).is_none());
    }

    #[test]
    fn invalid_specs_are_errors() {
        assert_eq!(
            build_guest_dtb(&GuestDtbSpec {
                num_vcpus: 0,
                ..spec()
            }),
            Err(FdtError::InvalidSpec)
        );
        assert_eq!(
            build_guest_dtb(&GuestDtbSpec {
                num_vcpus: 9,
                ..spec()
            }),
            Err(FdtError::InvalidSpec)
        );
        assert_eq!(
            build_guest_dtb(&GuestDtbSpec {
                ram_size: 0,
                ..spec()
            }),
            Err(FdtError::InvalidSpec)
        );
        assert_eq!(
            build_guest_dtb(&GuestDtbSpec {
                initrd: Some((0x4200_0000, 0x4200_0000)),
                ..spec()
            }),
            Err(FdtError::InvalidSpec)
        );
        let misnamed = Device {
            name: "a/b".into(),
            ..spec().uart.unwrap()
        };
        assert_eq!(
            build_guest_dtb(&GuestDtbSpec {
                extra_mmio: alloc::vec![misnamed],
                ..spec()
            }),
            Err(FdtError::BadName)
        );
    }
}

#[cfg(any(test, kani))]
mod proofs {
    use super::*;

    const ALPHABET: &[u8] = b"hv.kernelvcpusmemlogtestdv=0x19aAfKMG, -";

    proof! {
        /// Any command line made of the characters the syntax uses parses or is rejected, never panics.
        #[unwind(25)]
        fn command_line_parser_is_total(src) {
            let len = src.below(24) as usize;
            let mut text = String::new();
            for _ in 0..len {
                text.push(ALPHABET[src.below(ALPHABET.len() as u64) as usize] as char);
            }
            if let Ok(args) = parse_hv_args(&text) {
                if let Some((addr, size)) = args.guest_kernel {
                    assert!(size > 0 && addr.checked_add(size).is_some());
                }
            }
        }
    }

    fn device_at(name: &str, base: u64, irq: Option<u32>, compatible: &str) -> Device {
        Device {
            name: name.into(),
            base,
            size: 0x1000,
            irq,
            compatible: compatible.into(),
        }
    }

    proof! {
        /// The guest device tree always parses, names exactly the VM's memory and vCPUs,
        /// and reads back (through the host parser) as the devices, interrupts and
        /// initramfs it was given; its header totalsize is its length.
        #[unwind(9)]
        fn guest_tree_has_exactly_the_vm_memory(src) {
            let ram_base = src.below(1 << 20) << 21;
            let ram_size = (1 + src.below(1 << 12)) << 20;
            let num_vcpus = 1 + src.below(8) as usize;
            let uart_spi = src.below(988) as u32;
            let uart = if src.any() {
                Some(device_at("pl011", 0x0900_0000, Some(32 + uart_spi), "arm,pl011"))
            } else {
                None
            };
            let virtio: Vec<Device> = (0..src.below(3))
                .map(|slot| device_at("virtio_mmio", 0x0a00_0000 + slot * 0x200, Some(48 + slot as u32), "virtio,mmio"))
                .collect();
            let initrd = if src.any() {
                let start = src.below(u64::MAX - (1 << 30));
                Some((start, start + 1 + src.below(1 << 30)))
            } else {
                None
            };
            let spec = GuestDtbSpec {
                ram_base,
                ram_size,
                num_vcpus,
                cpu_compatible: String::new(),
                gic_dist: (0x0800_0000, 0x1_0000),
                gic_redist_base: 0x080a_0000,
                uart: uart.clone(),
                virtio: virtio.clone(),
                extra_mmio: Vec::new(),
                bootargs: String::from("console=ttyAMA0"),
                initrd,
            };
            let blob = build_guest_dtb(&spec).unwrap();
            let tree = fdt::Fdt::new(&blob).unwrap();
            assert_eq!(tree.total_size(), blob.len());
            let memory = tree.memory();
            let mut regions = memory.regions();
            let r = regions.next().unwrap();
            assert_eq!((r.starting_address as usize as u64, r.size.map(|s| s as u64)), (ram_base, Some(ram_size)));
            assert!(regions.next().is_none());
            assert_eq!(tree.cpus().count(), num_vcpus);

            let host = parse_host(&blob).unwrap();
            assert_eq!(host.ram, [(ram_base, ram_size)]);
            assert_eq!(host.cpu_mpidrs, (0..num_vcpus as u64).collect::<Vec<_>>());
            assert_eq!(host.gic_redist, (0x080a_0000, num_vcpus as u64 * 0x2_0000));
            assert_eq!(host.uart.map(|u| u.irq), uart.map(|u| u.irq));
            assert_eq!(
                host.virtio_mmio.iter().map(|d| (d.base, d.irq)).collect::<Vec<_>>(),
                virtio.iter().map(|d| (d.base, d.irq)).collect::<Vec<_>>()
            );
            assert_eq!(host.timer_irqs, [29, 30, 27, 26]);
            assert_eq!(host.psci_method.as_deref(), Some("hvc"));
            assert_eq!(host.initrd, initrd);
            assert_eq!(host.bootargs, "console=ttyAMA0");
        }
    }
}
