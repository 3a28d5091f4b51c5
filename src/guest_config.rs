//! What the hypervisor learns at boot, turned into VM configuration: the
//! host device tree (QEMU's, in x0), the hypervisor's command line, and the
//! device tree each guest is given.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use log::LevelFilter;

use crate::fdt_writer::{hex_digits, FdtError, FdtWriter, TreeSink};

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
    /// `rng-seed` from /chosen (QEMU's random bytes), the first 32 of them.
    pub rng_seed: Option<[u8; SEED_BYTES]>,
}

/// Bytes of random seed a guest gets in its /chosen `rng-seed`.
pub const SEED_BYTES: usize = 32;

/// Random seeds for one VM's device tree, derived from the machine's
/// `rng-seed` (which only the hypervisor sees), the VM's id and a salt (the
/// counter when the VM is built): distinct per VM and per boot of the
/// machine (a VM restarted from the hypervisor console keeps its tree and
/// so its seeds). The mix is splitmix64 over the host seed's words, not a
/// cryptographic hash: Linux mixes `rng-seed` into its pool with its other
/// entropy, it does not rely on it alone.
pub fn guest_seeds(host_seed: &[u8; SEED_BYTES], vmid: u16, salt: u64) -> ([u8; SEED_BYTES], u64) {
    let mut state = salt ^ (u64::from(vmid) << 48) ^ 0x9E37_79B9_7F4A_7C15;
    let mut next = |word: u64| {
        state = state.wrapping_add(word ^ 0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let words: [u64; 4] = core::array::from_fn(|i| {
        u64::from_le_bytes(host_seed[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]))
    });
    // Absorb the whole host seed first, then squeeze the output.
    for w in words {
        next(w);
    }
    let mut seed = [0u8; SEED_BYTES];
    for chunk in seed.chunks_exact_mut(8) {
        chunk.copy_from_slice(&next(0).to_le_bytes());
    }
    (seed, next(0))
}

/// The 32-bit big-endian cells of a property value.
pub(crate) fn be_cells(bytes: &[u8]) -> impl Iterator<Item = u32> + '_ {
    bytes
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
}

/// A property value of one or two cells as a number.
pub(crate) fn be_number(bytes: &[u8]) -> Option<u64> {
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

/// The big-endian word at `at`, if the bytes reach that far.
pub(crate) fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Check a device tree's structure before the `fdt` crate walks it: that
/// crate trusts the blob (it panics on string offsets outside the strings
/// block, non-UTF-8 names, truncated tokens, properties after subnodes),
/// so every token, offset, length and name is validated here first.
pub fn validate_dtb(dtb: &[u8]) -> Result<(), ConfigError> {
    let (structure, strings) = dtb_blocks(dtb)?;
    let mut walk = Walk::default();
    // Ends: every step that does not finish moves `at` on by at least 4.
    while !walk_token(structure, strings, &mut walk)? {}
    Ok(())
}

/// The structure and strings blocks a device tree's header names, if the
/// header is one and the blocks lie inside its `totalsize` and the blob.
fn dtb_blocks(dtb: &[u8]) -> Result<(&[u8], &[u8]), ConfigError> {
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
    Ok((
        &dtb[off_struct..off_struct + size_struct],
        &dtb[off_strings..off_strings + size_strings],
    ))
}

/// Deepest node nesting accepted.
const MAX_DEPTH: usize = 16;

/// Where the walk over the structure block is.
#[derive(Debug, Clone, Default)]
struct Walk {
    /// Offset of the next token; at most 3 past the block's end.
    at: usize,
    /// Open nodes, at most [`MAX_DEPTH`].
    depth: usize,
    /// Per open node, whether it has a subnode yet: the fdt crate needs
    /// every property before the node's first child.
    has_child: [bool; MAX_DEPTH],
}

/// Length of the UTF-8 string with a NUL terminator at `at` in `bytes`.
fn c_str(bytes: &[u8], at: usize) -> Option<usize> {
    let len = bytes.get(at..)?.iter().position(|b| *b == 0)?;
    is_utf8(&bytes[at..at + len]).then_some(len)
}

/// Whether `bytes` is UTF-8, as `core::str::from_utf8` decides (no overlong
/// forms, no surrogates, nothing above U+10FFFF), one sequence at a time:
/// the library's word-at-a-time fast path is more than a model checker can
/// afford.
fn is_utf8(bytes: &[u8]) -> bool {
    let mut i = 0;
    while i < bytes.len() {
        // The first continuation byte's range depends on the lead byte.
        let (len, second) = match bytes[i] {
            0x00..=0x7f => (1, 0x80..=0xbf),
            0xc2..=0xdf => (2, 0x80..=0xbf),
            0xe0 => (3, 0xa0..=0xbf),
            0xe1..=0xec | 0xee..=0xef => (3, 0x80..=0xbf),
            0xed => (3, 0x80..=0x9f),
            0xf0 => (4, 0x90..=0xbf),
            0xf1..=0xf3 => (4, 0x80..=0xbf),
            0xf4 => (4, 0x80..=0x8f),
            _ => return false,
        };
        if len > 1 {
            let Some(rest) = bytes.get(i + 1..i + len) else {
                return false;
            };
            if !second.contains(&rest[0]) || !rest[1..].iter().all(|b| (0x80..=0xbf).contains(b)) {
                return false;
            }
        }
        i += len;
    }
    true
}

/// `n` rounded up to a multiple of 4 (a mask: no division).
fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Check the token at `walk.at` and step over it: `Ok(true)` at the final
/// FDT_END, `Ok(false)` with `walk.at` moved on by at least 4 otherwise.
fn walk_token(structure: &[u8], strings: &[u8], walk: &mut Walk) -> Result<bool, ConfigError> {
    let bad = ConfigError::BadDeviceTree;
    let at = walk.at;
    let token = be32(structure, at).ok_or(bad.clone())?;
    match token {
        1 => {
            let len = c_str(structure, at + 4).ok_or(bad.clone())?;
            walk.at = align4(at + 4 + len + 1);
            if walk.depth > 0 {
                walk.has_child[walk.depth - 1] = true;
            }
            // A second root would follow a first one that had children.
            if walk.depth == MAX_DEPTH || (walk.depth == 0 && walk.has_child.iter().any(|c| *c)) {
                return Err(bad);
            }
            walk.has_child[walk.depth] = false;
            walk.depth += 1;
        }
        2 => {
            walk.depth = walk.depth.checked_sub(1).ok_or(bad.clone())?;
            walk.at = at + 4;
        }
        3 => {
            if walk.depth == 0 || walk.has_child[walk.depth - 1] {
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
            walk.at = align4(at + 12 + len);
        }
        4 if be32(structure, at + 4) == Some(2) || be32(structure, at + 4) == Some(4) => {
            walk.at = at + 4
        }
        9 if walk.depth == 0 => return Ok(true),
        _ => return Err(bad),
    }
    Ok(false)
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
        host.rng_seed = chosen
            .property("rng-seed")
            .and_then(|p| p.value.get(..SEED_BYTES))
            .and_then(|bytes| bytes.try_into().ok());
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
    /// `hv.disk=on|ro|off`: the VM has a disk, stored by the machine's
    /// virtio-blk device whose serial is the VM's name (`vm1`); `ro`: read-only.
    pub disk: Option<bool>,
    /// `hv.diskirq=on|off`: disk requests complete on the physical device's
    /// interrupt, while the guest runs (on), or are waited for at the
    /// notification exit (off). See the README on the choice.
    pub disk_interrupts: Option<bool>,
    /// `hv.disksettle=US`: with `hv.diskirq=on`, how long a notification
    /// waits for quick answers before it leaves the rest to the interrupt.
    pub disk_settle_us: Option<u64>,
    /// Everything after ` -- `: the guest kernel's command line.
    pub guest_bootargs: String,
}

/// A number in decimal or `0x` hexadecimal (digits only: no sign).
fn parse_number(s: &[u8]) -> Option<u64> {
    let (digits, hex) = match s {
        [b'0', b'x' | b'X', hex @ ..] => (hex, true),
        _ => (s, false),
    };
    if digits.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for d in digits {
        let value = u64::from(match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' if hex => d - b'a' + 10,
            b'A'..=b'F' if hex => d - b'A' + 10,
            _ => return None,
        });
        // Shifts and a constant factor, no multiplication by a variable radix.
        n = if hex {
            if n >> 60 != 0 {
                return None;
            }
            n << 4 | value
        } else {
            n.checked_mul(10)?.checked_add(value)?
        };
    }
    Some(n)
}

/// A size with an optional K/M/G suffix, in bytes.
fn parse_size(s: &[u8]) -> Option<u64> {
    let (shift, digits) = match s.split_last()? {
        (b'K' | b'k', digits) => (10, digits),
        (b'M' | b'm', digits) => (20, digits),
        (b'G' | b'g', digits) => (30, digits),
        _ => (0, s),
    };
    let n = parse_number(digits)?;
    (n.leading_zeros() >= shift).then(|| n << shift)
}

/// Split a command line at its first ` -- `: the hypervisor's words before
/// it, the guest's command line (trimmed) after it. A trailing `--` ends the
/// hypervisor's words and gives the guest nothing.
fn split_bootargs(bootargs: &str) -> (&str, &str) {
    // Byte ranges: the separator and the white space trimmed are ASCII, so
    // both sides stay valid UTF-8.
    let (own, guest) = split_bootargs_bytes(bootargs.as_bytes());
    (&bootargs[own], &bootargs[guest])
}

/// [`split_bootargs`] over bytes: the ranges of the two parts.
fn split_bootargs_bytes(line: &[u8]) -> (core::ops::Range<usize>, core::ops::Range<usize>) {
    let len = line.len();
    match first_separator(line) {
        Some(at) => {
            let mut start = at + 4;
            while start < len && line[start].is_ascii_whitespace() {
                start += 1;
            }
            let mut end = len;
            while end > start && line[end - 1].is_ascii_whitespace() {
                end -= 1;
            }
            (0..at, start..end)
        }
        None if matches!(line, [.., b' ', b'-', b'-']) => (0..len - 3, len..len),
        None if matches!(line, [.., b'-', b'-']) => (0..len - 2, len..len),
        None => (0..len, len..len),
    }
}

/// Where the first ` -- ` in `line` starts (byte by byte: no slice
/// comparisons, which a model checker unrolls badly).
fn first_separator(line: &[u8]) -> Option<usize> {
    (0..line.len().saturating_sub(3)).find(|&i| {
        line[i] == b' ' && line[i + 1] == b'-' && line[i + 2] == b'-' && line[i + 3] == b' '
    })
}

/// Parse `hv.* ... -- guest arguments`. Words that are not `hv.*` before the
/// `--` are ignored (QEMU or a boot loader may add some). Words are separated
/// by ASCII white space, as Linux splits its own command line.
pub fn parse_hv_args(bootargs: &str) -> Result<HvArgs, ConfigError> {
    let (own, guest) = split_bootargs(bootargs);
    let mut args = HvArgs {
        guest_bootargs: guest.to_string(),
        ..HvArgs::default()
    };
    for word in own.split_ascii_whitespace() {
        apply_option(&mut args, word)?;
    }
    Ok(args)
}

/// Apply one word of the hypervisor's command line: an `hv.*` option sets
/// its field, any other word changes nothing.
fn apply_option(args: &mut HvArgs, word: &str) -> Result<(), ConfigError> {
    apply_option_bytes(args, word.as_bytes()).map_err(|e| match e {
        OptionError::BadValue => ConfigError::BadValue(word.to_string()),
        OptionError::Unknown => ConfigError::UnknownOption(word.to_string()),
    })
}

/// Why an `hv.*` word was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OptionError {
    BadValue,
    Unknown,
}

/// [`apply_option`] over the word's bytes: the option syntax is ASCII, so
/// the word is read byte by byte, never decoded.
fn apply_option_bytes(args: &mut HvArgs, word: &[u8]) -> Result<(), OptionError> {
    use OptionError::BadValue;
    let Some(option) = word.strip_prefix(b"hv.") else {
        return Ok(());
    };
    let split = |s: &[u8], at: u8| -> Result<(usize, usize), OptionError> {
        let i = s.iter().position(|b| *b == at).ok_or(BadValue)?;
        Ok((i, i + 1))
    };
    let (key_end, value_start) = split(option, b'=')?;
    let (key, value) = (&option[..key_end], &option[value_start..]);
    match key {
        b"kernel" => {
            let (addr_end, size_start) = split(value, b',')?;
            let addr = parse_number(&value[..addr_end]).ok_or(BadValue)?;
            let size = parse_size(&value[size_start..])
                .filter(|s| *s > 0)
                .ok_or(BadValue)?;
            addr.checked_add(size).ok_or(BadValue)?;
            args.guest_kernel = Some((addr, size));
        }
        b"vcpus" => {
            args.guest_vcpus = Some(
                parse_number(value)
                    .and_then(|n| usize::try_from(n).ok())
                    .filter(|n| *n > 0)
                    .ok_or(BadValue)?,
            )
        }
        b"mem" => {
            // Whole MiB only: rounding a typo like `hv.mem=512K` down to 0 or
            // `1536K` to 1 MiB silently would hide it.
            args.guest_mem_mib = Some(
                parse_size(value)
                    .filter(|b| *b > 0 && b.trailing_zeros() >= 20)
                    .map(|b| b >> 20)
                    .ok_or(BadValue)?,
            )
        }
        b"log" => {
            args.log_level = Some(match value {
                b"off" => LevelFilter::Off,
                b"error" => LevelFilter::Error,
                b"warn" => LevelFilter::Warn,
                b"info" => LevelFilter::Info,
                b"debug" => LevelFilter::Debug,
                b"trace" => LevelFilter::Trace,
                _ => return Err(BadValue),
            })
        }
        b"testdev" => {
            args.test_device = match value {
                b"on" => true,
                b"off" => false,
                _ => return Err(BadValue),
            }
        }
        b"s2blocks" => {
            args.stage2_blocks = match value {
                b"on" => true,
                b"off" => false,
                _ => return Err(BadValue),
            }
        }
        b"disksettle" => {
            args.disk_settle_us = Some(
                parse_number(value)
                    .filter(|us| *us <= 1_000_000)
                    .ok_or(BadValue)?,
            )
        }
        b"diskirq" => {
            args.disk_interrupts = match value {
                b"on" => Some(true),
                b"off" => Some(false),
                _ => return Err(BadValue),
            }
        }
        b"disk" => {
            args.disk = match value {
                b"on" => Some(false),
                b"ro" => Some(true),
                b"off" => None,
                _ => return Err(BadValue),
            }
        }
        _ => return Err(OptionError::Unknown),
    }
    Ok(())
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
    /// `rng-seed` and `kaslr-seed` for /chosen (see [`guest_seeds`]).
    pub seeds: Option<([u8; SEED_BYTES], u64)>,
}

const GIC_PHANDLE: u32 = 1;
const CLOCK_PHANDLE: u32 = 2;
const GICR_FRAME: u64 = 0x2_0000;
const MAX_VCPUS: usize = 8;

fn reg(w: &mut impl TreeSink, base: u64, size: u64) {
    w.property_cells(
        "reg",
        [
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
    write_guest_tree(spec, &mut w);
    w.finish()
}

/// The calls that describe the guest's tree (see [`build_guest_dtb`]), for a
/// spec that passed its checks.
fn write_guest_tree(spec: &GuestDtbSpec, w: &mut impl TreeSink) {
    w.begin_node("");
    w.property_u32("#address-cells", 2);
    w.property_u32("#size-cells", 2);
    w.property_string("compatible", "linux,dummy-virt");
    w.property_string("model", "hvrust virtual machine");
    w.property_u32("interrupt-parent", GIC_PHANDLE);

    w.begin_node_at("memory", spec.ram_base);
    w.property_string("device_type", "memory");
    reg(w, spec.ram_base, spec.ram_size);
    w.end_node();

    w.begin_node("cpus");
    w.property_u32("#address-cells", 1);
    w.property_u32("#size-cells", 0);
    for cpu in 0..spec.num_vcpus {
        w.begin_node_at("cpu", cpu as u64);
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
    w.property_string_list("compatible", ["arm,psci-1.0", "arm,psci-0.2"]);
    w.property_string("method", "hvc");
    w.end_node();

    w.begin_node_at("intc", spec.gic_dist.0);
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
        [
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
    w.property_string_list("compatible", ["arm,armv8-timer", "arm,armv7-timer"]);
    // Secure physical, non-secure physical, virtual, hypervisor: PPIs 13, 14, 11, 10, level-high.
    w.property_cells("interrupts", [1, 13, 4, 1, 14, 4, 1, 11, 4, 1, 10, 4]);
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

        w.begin_node_at("pl011", uart.base);
        w.property_string_list("compatible", ["arm,pl011", "arm,primecell"]);
        reg(w, uart.base, uart.size.max(0x1000));
        if let Some(cells) = spi_cells(uart, 4) {
            w.property_cells("interrupts", cells);
        }
        w.property_cells("clocks", [CLOCK_PHANDLE, CLOCK_PHANDLE]);
        w.property_string_list("clock-names", ["uartclk", "apb_pclk"]);
        w.end_node();
    }

    for dev in &spec.virtio {
        w.begin_node_at("virtio_mmio", dev.base);
        w.property_string("compatible", "virtio,mmio");
        reg(w, dev.base, dev.size);
        // Level-sensitive, high: the emulated transport holds its line up
        // while InterruptStatus has a bit set (until the driver's ACK), and
        // the vGIC samples device lines as levels.
        if let Some(cells) = spi_cells(dev, 4) {
            w.property_cells("interrupts", cells);
        }
        w.property_empty("dma-coherent");
        w.end_node();
    }

    for dev in &spec.extra_mmio {
        w.begin_node_at(&dev.name, dev.base);
        w.property_string("compatible", &dev.compatible);
        reg(w, dev.base, dev.size);
        w.end_node();
    }

    w.begin_node("chosen");
    w.property_string("bootargs", &spec.bootargs);
    if let Some(uart) = &spec.uart {
        // "/pl011@<base>", as node_name() writes the node's name.
        let (digits, count) = hex_digits(uart.base);
        w.property_parts("stdout-path", &[b"/pl011@", &digits[16 - count..], &[0]]);
    }
    if let Some((start, end)) = spec.initrd {
        w.property_u64("linux,initrd-start", start);
        w.property_u64("linux,initrd-end", end);
    }
    if let Some((rng, kaslr)) = &spec.seeds {
        w.property("rng-seed", rng);
        w.property_u64("kaslr-seed", *kaslr);
    }
    w.end_node();

    w.end_node();
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
        w.property_string_list("compatible", ["arm,pl011", "arm,primecell"]);
        reg(&mut w, 0x0900_0000, 0x1000);
        w.property_cells("interrupts", [0, 1, 4]);
        w.end_node();
        w.begin_node("virtio_mmio@a000000");
        w.property_string("compatible", "virtio,mmio");
        reg(&mut w, 0x0a00_0000, 0x200);
        w.property_cells("interrupts", [0, 16, 1]);
        w.end_node();
        w.begin_node("intc@8000000");
        w.property_string("compatible", "arm,gic-v3");
        w.property_u32("#address-cells", 2);
        w.property_u32("#size-cells", 2);
        w.property_cells(
            "reg",
            [0, 0x0800_0000, 0, 0x1_0000, 0, 0x080a_0000, 0, 0xf6_0000],
        );
        w.property_u32("phandle", 0x8005);
        w.end_node();
        w.begin_node("cpus");
        w.property_u32("#address-cells", 1);
        w.property_u32("#size-cells", 0);
        for i in 0..4 {
            w.begin_node_at("cpu", i);
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
        w.property("rng-seed", &[5u8; 40]);
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
    fn utf8_check_agrees_with_the_library() {
        let agree = |bytes: &[u8]| {
            assert_eq!(
                is_utf8(bytes),
                core::str::from_utf8(bytes).is_ok(),
                "{bytes:x?}"
            );
        };
        for a in 0..=255u8 {
            agree(&[a]);
            for b in 0..=255u8 {
                agree(&[a, b]);
                // Continuation bytes matter by range: the ends of each range.
                for c in [
                    0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc2, 0xe0, 0xff,
                ] {
                    agree(&[a, b, c]);
                    for d in [0x00, 0x7f, 0x80, 0xbf, 0xc0] {
                        agree(&[a, b, c, d]);
                        agree(&[b'x', a, b, c, d, b'y']);
                    }
                }
            }
        }
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
        // Digits only: no sign, and a `0x` needs digits after it.
        assert_eq!(
            parse_hv_args("hv.vcpus=+2"),
            Err(ConfigError::BadValue("hv.vcpus=+2".into()))
        );
        assert_eq!(
            parse_hv_args("hv.kernel=0x,1M"),
            Err(ConfigError::BadValue("hv.kernel=0x,1M".into()))
        );
        assert_eq!(parse_hv_args("").unwrap(), HvArgs::default());
    }

    #[test]
    fn guests_get_their_own_seeds() {
        let host = [9u8; SEED_BYTES];
        let (a, ka) = guest_seeds(&host, 1, 1000);
        let (b, kb) = guest_seeds(&host, 2, 1000);
        let (c, kc) = guest_seeds(&host, 1, 1001);
        let (d, _) = guest_seeds(&[8u8; SEED_BYTES], 1, 1000);
        assert!(
            a != b && a != c && b != c && a != d,
            "per VM, per boot, per host seed"
        );
        assert!(ka != kb && ka != kc && kb != kc);
        assert_ne!(a, host);
        assert_eq!(guest_seeds(&host, 1, 1000), (a, ka), "deterministic");
        let blob = build_guest_dtb(&spec()).unwrap();
        let tree = fdt::Fdt::new(&blob).unwrap();
        let chosen = tree.find_node("/chosen").unwrap();
        assert_eq!(chosen.property("rng-seed").unwrap().value.len(), SEED_BYTES);
        assert_eq!(chosen.property("kaslr-seed").unwrap().value.len(), 8);
        // The host's seed is read from its /chosen (its first 32 bytes).
        let host = parse_host(&qemu_like_host_dtb()).unwrap();
        assert_eq!(host.rng_seed, Some([5u8; SEED_BYTES]));
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
            seeds: Some(guest_seeds(&[7; SEED_BYTES], 1, 42)),
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
    use crate::fdt_writer::CallModel;

    /// Option values worth trying whole: random text rarely spells them.
    #[cfg(not(kani))]
    const VALUES: [&[u8]; 10] = [
        b"off", b"warn", b"on", b"1", b"0", b"0x1f,1M", b"1G", b"2048K", b"9,0", b"0x,1",
    ];
    /// The characters values are made of.
    #[cfg(not(kani))]
    const VALUE_CHARS: &[u8] = b"0x1f9,KMGonwar";
    /// The keys, and a near miss.
    const KEYS: [&[u8]; 7] = [
        b"kernel",
        b"vcpus",
        b"mem",
        b"log",
        b"testdev",
        b"s2blocks",
        b"vcpu",
    ];
    /// Longest value under Kani, and longest word: `hv.s2blocks=` and a 7-byte value.
    #[cfg(kani)]
    const VALUE_MAX: usize = 6;
    const WORD_MAX: usize = 19;

    /// `hv.KEY=VALUE` with a known key (or a near miss) and a value of up to 7 bytes, or
    /// (1 in 4) any 8 bytes from the option alphabet.
    #[cfg(not(kani))]
    fn option_word(src: &mut crate::verify::Source) -> ([u8; WORD_MAX], usize) {
        let mut word = [0u8; WORD_MAX];
        let mut len = 0;
        let mut put = |bytes: &[u8], len: &mut usize| {
            for b in bytes {
                word[*len] = *b;
                *len += 1;
            }
        };
        if src.below(4) == 0 {
            for _ in 0..src.below(9) {
                put(&[b"hv.kernel=0x1,M -"[src.below(17) as usize]], &mut len);
            }
            return (word, len);
        }
        put(b"hv.", &mut len);
        put(KEYS[src.below(KEYS.len() as u64) as usize], &mut len);
        put(b"=", &mut len);
        if src.any() {
            put(VALUES[src.below(VALUES.len() as u64) as usize], &mut len);
        } else {
            for _ in 0..src.below(8) {
                put(
                    &[VALUE_CHARS[src.below(VALUE_CHARS.len() as u64) as usize]],
                    &mut len,
                );
            }
        }
        (word, len)
    }

    /// Byte by byte: slice comparison is a `memcmp` the model checker unrolls badly.
    fn same(a: &[u8], b: &[u8]) -> bool {
        a.len() == b.len() && (0..a.len()).all(|i| a[i] == b[i])
    }

    /// Which fields `args` sets (differ from the defaults); the guest's command line is
    /// never set by an option.
    fn fields_set(args: &HvArgs) -> [bool; 6] {
        assert!(args.guest_bootargs.is_empty());
        [
            args.guest_kernel.is_some(),
            args.guest_vcpus.is_some(),
            args.guest_mem_mib.is_some(),
            args.log_level.is_some(),
            args.test_device,
            args.stage2_blocks,
        ]
    }

    /// The checks of the proof below, for one word.
    fn check_option(word: &[u8]) {
        let mut args = HvArgs::default();
        let result = apply_option_bytes(&mut args, word);
        let set = fields_set(&args);
        if !(word.len() >= 3 && same(&word[..3], b"hv.")) {
            assert_eq!(result, Ok(()));
            assert_eq!(set, [false; 6]);
            crate::cover!(!word.is_empty(), "a word that is not an hv. option ignored");
            return;
        }
        let option = &word[3..];
        let equals = option.iter().position(|b| *b == b'=');
        let key = &option[..equals.unwrap_or(0)];
        // The field each known key names.
        let field = KEYS[..6]
            .iter()
            .position(|k| equals.is_some() && same(k, key));
        match result {
            Err(e) => {
                assert_eq!(set, [false; 6]);
                let expected = if field.is_some() || equals.is_none() {
                    OptionError::BadValue
                } else {
                    OptionError::Unknown
                };
                assert_eq!(e, expected);
                crate::cover!(field.is_some(), "a bad value refused");
                crate::cover!(
                    field.is_none() && equals.is_some(),
                    "an unknown option refused"
                );
            }
            Ok(()) => {
                let field = field.expect("an unknown key accepted");
                // Nothing but its own field; a switch may be set to its default (off).
                for (i, set) in set.iter().enumerate() {
                    assert!(!set || i == field);
                }
                if let Some((addr, size)) = args.guest_kernel {
                    assert!(size > 0 && addr.checked_add(size).is_some());
                    crate::cover!(size == 1 << 20, "a kernel size in MiB");
                }
                if let Some(vcpus) = args.guest_vcpus {
                    assert!(vcpus > 0);
                }
                if let Some(mib) = args.guest_mem_mib {
                    assert!(mib > 0 && mib <= u64::MAX >> 20);
                    crate::cover!(mib == 2, "memory given in KiB");
                }
                assert!(
                    set[field] || field >= 4,
                    "an option accepted without setting its field"
                );
                crate::cover!(args.log_level == Some(LevelFilter::Warn), "a log level set");
                crate::cover!(args.test_device, "the test device switched on");
            }
        }
    }

    proof! {
        /// One word of the command line sets only the field its `hv.` key names, to a value
        /// that is usable (kernel: non-empty and not wrapping; vCPUs and MiB: non-zero), or is
        /// refused (a bad value, or an unknown key) changing nothing; other words change
        /// nothing. Under Kani: every key (and a near miss) with any value of up to 6 bytes,
        /// and any word of up to 8 bytes; in the property test, values from a list of ten or
        /// up to 7 bytes of the option alphabet.
        #[unwind(20)]
        fn option_word_sets_only_its_field(src) {
            #[cfg(kani)]
            {
                // Every key and length in turn: concrete lengths keep the slices concrete.
                let value: [u8; VALUE_MAX] = src.any();
                for key in KEYS {
                    for len in 0..=VALUE_MAX {
                        let mut word = [0u8; WORD_MAX];
                        let parts: [&[u8]; 4] = [b"hv.", key, b"=", &value[..len]];
                        let mut at = 0;
                        for part in parts {
                            word[at..at + part.len()].copy_from_slice(part);
                            at += part.len();
                        }
                        check_option(&word[..at]);
                    }
                }
                let word: [u8; 8] = src.any();
                for len in 0..=word.len() {
                    check_option(&word[..len]);
                }
            }
            #[cfg(not(kani))]
            {
                let (bytes, len) = option_word(src);
                check_option(&bytes[..len]);
            }
        }
    }

    /// Whether `part` holds ` -- `, by the definition rather than the code's search.
    fn holds_separator(part: &[u8]) -> bool {
        (0..part.len()).any(|i| {
            i + 4 <= part.len()
                && part[i] == b' '
                && part[i + 1] == b'-'
                && part[i + 2] == b'-'
                && part[i + 3] == b' '
        })
    }

    /// The checks of the proof below, for one command line.
    fn check_split(line: &[u8]) {
        let (own, guest) = split_bootargs_bytes(line);
        assert_eq!(own.start, 0);
        let (own, guest_range) = (&line[own], guest);
        let guest = &line[guest_range.clone()];
        assert!(!holds_separator(own));
        let white = |b: Option<&u8>| b.is_some_and(u8::is_ascii_whitespace);
        assert!(!white(guest.first()) && !white(guest.last()));
        let rest = &line[own.len()..];
        if holds_separator(&rest[..rest.len().min(4)]) {
            // The guest's part is what follows, less the white space around it.
            let after = 4 + own.len();
            assert!(guest_range.start >= after);
            assert!(line[after..guest_range.start]
                .iter()
                .all(u8::is_ascii_whitespace));
            assert!(line[guest_range.end..].iter().all(u8::is_ascii_whitespace));
            crate::cover!(!guest.is_empty() && !own.is_empty(), "both parts non-empty");
            crate::cover!(
                (1..guest.len()).any(|i| guest[i - 1] == b'-' && guest[i] == b'-'),
                "a second separator left to the guest"
            );
        } else {
            assert!(guest.is_empty());
            assert!(matches!(rest, [] | [b'-', b'-'] | [b' ', b'-', b'-']));
            crate::cover!(rest.len() == 3, "a trailing separator dropped");
        }
        #[cfg(not(kani))]
        {
            let line = core::str::from_utf8(line).unwrap();
            let args = parse_hv_args(line).unwrap();
            assert_eq!(args.guest_bootargs.as_bytes(), guest);
            assert_eq!(args.guest_bootargs, args.guest_bootargs.trim());
        }
    }

    proof! {
        /// Any command line of up to 10 letters, dashes, spaces and tabs splits at its first
        /// ` -- `: the hypervisor's part is everything before it, the guest's part everything
        /// after it, without white space at either end; without one, the guest gets nothing
        /// and a trailing `--` is dropped. (Each hypervisor word is then one `apply_option`;
        /// the property test also runs the whole `parse_hv_args`.)
        #[unwind(12)]
        fn command_line_splits_at_the_first_separator(src) {
            let mut bytes = [0u8; 10];
            for b in bytes.iter_mut() {
                *b = b"a -\t"[src.below(4) as usize];
            }
            // Every length in turn under Kani: concrete lengths keep the slices concrete.
            #[cfg(kani)]
            for len in 0..=bytes.len() {
                check_split(&bytes[..len]);
            }
            #[cfg(not(kani))]
            check_split(&bytes[..src.below(11) as usize]);
        }
    }

    proof! {
        /// One step of the structure walk, from any state the walk can be in (next token at
        /// most 3 past the end, depth at most 16, any child flags) over a 16-byte structure
        /// block and a 6-byte strings block of any contents, never panics, and either
        /// finishes, refuses, or moves on by at least 4 bytes keeping that state valid: so
        /// `validate_dtb` ends, and never panics. (The walk only reads through bounds-checked
        /// `get`s, so a position near the end stands for every truncated block.)
        #[unwind(18)]
        fn structure_walk_step_is_total_and_advances(src) {
            let mut structure: [u8; 16] = src.any();
            let mut strings: [u8; 6] = src.any();
            let at = src.below(structure.len() as u64 + 4) as usize;
            // In the property test, mostly the bytes that matter (small numbers for tokens,
            // lengths and offsets; name characters), and half the time a token (and for a
            // property, a small length and name offset) at the walk's position, which random
            // bytes rarely spell. The model checker takes every byte as it is: any contents.
            #[cfg(not(kani))]
            {
                for b in structure.iter_mut() {
                    if src.any() {
                        *b = src.below(12) as u8;
                    }
                }
                for b in strings.iter_mut() {
                    if src.any() {
                        *b = b"#a-c\0"[src.below(5) as usize];
                    }
                }
                if src.any() {
                    let token = 1 + src.below(9) as u32;
                    let words = [token, src.below(8) as u32, src.below(4) as u32];
                    for (i, word) in words.iter().enumerate().take(if token == 3 { 3 } else { 1 }) {
                        if let Some(slot) = structure.get_mut(at + 4 * i..at + 4 * i + 4) {
                            slot.copy_from_slice(&word.to_be_bytes());
                        }
                    }
                }
            }
            let mut walk = Walk { at, depth: src.below(MAX_DEPTH as u64 + 1) as usize, has_child: src.any() };
            let before = walk.clone();
            match walk_token(&structure, &strings, &mut walk) {
                Ok(true) => assert_eq!(before.depth, 0),
                Ok(false) => {
                    assert!(walk.at >= before.at + 4 && walk.at <= structure.len() + 3);
                    assert!(walk.depth <= MAX_DEPTH);
                    crate::cover!(walk.depth > before.depth, "a node opened");
                    crate::cover!(walk.depth == before.depth && walk.at >= before.at + 12, "a property stepped over");
                    crate::cover!(walk.depth < before.depth, "a node closed");
                }
                Err(_) => crate::cover!(before.depth == MAX_DEPTH, "a node too deep refused"),
            }
        }
    }

    proof! {
        /// Any blob of up to 48 bytes with a device-tree magic yields either an error or two
        /// blocks that lie inside both the blob and its header's totalsize, without panicking.
        #[unwind(7)]
        fn header_names_blocks_inside_the_blob(src) {
            let len = 40 + src.below(9) as usize;
            let mut dtb = alloc::vec![0u8; len];
            dtb[..4].copy_from_slice(&0xd00d_feedu32.to_be_bytes());
            // Sizes and offsets: mostly small, sometimes anything (wrapping sums).
            for field in [1, 2, 3, 8, 9] {
                let v: u32 = if src.any() { src.below(64) as u32 } else { src.any() };
                dtb[4 * field..4 * field + 4].copy_from_slice(&v.to_be_bytes());
            }
            let total = u32::from_be_bytes([dtb[4], dtb[5], dtb[6], dtb[7]]) as usize;
            if let Ok((structure, strings)) = dtb_blocks(&dtb) {
                let field = |i: usize| u32::from_be_bytes([dtb[4 * i], dtb[4 * i + 1], dtb[4 * i + 2], dtb[4 * i + 3]]) as usize;
                assert!(total <= len && total >= 40);
                assert!(field(2) + structure.len() <= total && structure.len() == field(9));
                assert!(field(3) + strings.len() <= total && strings.len() == field(8));
                crate::cover!(!structure.is_empty() && !strings.is_empty(), "two non-empty blocks");
            }
        }
    }

    /// A property value the spec demands (the longest: the GIC's eight cells), in a fixed
    /// array: values built in a `Vec` would cost the model checker an allocation each.
    #[derive(Clone, Copy)]
    struct Value {
        bytes: [u8; 32],
        len: usize,
    }

    impl Value {
        fn of(parts: &[&[u8]]) -> Value {
            let mut v = Value {
                bytes: [0; 32],
                len: 0,
            };
            for part in parts {
                for b in *part {
                    v.bytes[v.len] = *b;
                    v.len += 1;
                }
            }
            v
        }

        fn cells<const N: usize>(cells: [u32; N]) -> Value {
            Value::of(&[cells.map(u32::to_be_bytes).as_flattened()])
        }

        fn reg(base: u64, size: u64) -> Value {
            Value::cells([
                (base >> 32) as u32,
                base as u32,
                (size >> 32) as u32,
                size as u32,
            ])
        }

        fn string(s: &str) -> Value {
            Value::of(&[s.as_bytes(), &[0]])
        }

        /// Whether `parts`, one after the other, are exactly this value.
        fn is(&self, parts: &[&[u8]]) -> bool {
            let mut at = 0;
            for part in parts {
                for b in *part {
                    if at >= self.len || self.bytes[at] != *b {
                        return false;
                    }
                    at += 1;
                }
            }
            at == self.len
        }
    }

    /// The nodes the checker knows by name ("?" stands for any other).
    const NODES: [&str; 11] = [
        "",
        "memory",
        "cpus",
        "cpu",
        "psci",
        "intc",
        "timer",
        "apb-pclk",
        "pl011",
        "virtio_mmio",
        "chosen",
    ];

    fn known_node(name: &str) -> &'static str {
        let same =
            |a: &str| a.len() == name.len() && a.bytes().zip(name.bytes()).all(|(x, y)| x == y);
        NODES.iter().copied().find(|n| same(n)).unwrap_or("?")
    }

    /// One open node: its name and, for `name@addr`, its unit address.
    type Node = (&'static str, Option<u64>);

    /// Deepest path the guest tree has (root, cpus, cpu@n).
    const TREE_DEPTH: usize = 3;

    /// Checks each call [`write_guest_tree`] makes against the spec, as it comes.
    struct TreeChecker<'a> {
        spec: &'a GuestDtbSpec,
        calls: CallModel,
        /// The open nodes, outermost first.
        path: [Node; TREE_DEPTH],
        depth: usize,
        memory_nodes: usize,
        cpus: usize,
        virtio_nodes: usize,
        checked: usize,
    }

    impl TreeChecker<'_> {
        fn node(&self) -> Node {
            self.depth
                .checked_sub(1)
                .map_or(("", None), |i| self.path[i])
        }
        fn in_cpus(&self) -> bool {
            self.depth == 3 && self.path[1].0 == "cpus"
        }
        fn open(&mut self, name: &str, addr: Option<u64>) {
            assert!(self.depth < TREE_DEPTH, "a deeper tree than the guest's");
            let name = known_node(name);
            self.path[self.depth] = (name, addr);
            self.depth += 1;
            if self.in_cpus() {
                // vCPU nodes come in order: cpu@0, cpu@1, ...
                assert_eq!(self.node(), ("cpu", Some(self.cpus as u64)));
                self.cpus += 1;
            }
            if name == "virtio_mmio" {
                self.virtio_nodes += 1;
                assert_eq!(addr, Some(self.spec.virtio[self.virtio_nodes - 1].base));
            }
        }
    }

    impl TreeSink for TreeChecker<'_> {
        fn begin_node(&mut self, name: &str) {
            self.calls.begin_node(name);
            self.open(name, None);
        }

        fn begin_node_at(&mut self, name: &str, addr: u64) {
            self.calls.begin_node_at(name, addr);
            self.open(name, Some(addr));
        }

        fn end_node(&mut self) {
            self.calls.end_node();
            self.depth -= 1;
        }

        fn property_parts(&mut self, name: &str, parts: &[&[u8]]) {
            self.calls.property_parts(name, parts);
            if let Some(expected) = self.expected(name, parts) {
                assert!(expected.is(parts), "property {name} of {:?}", self.node());
                self.checked += 1;
            }
        }
    }

    impl TreeChecker<'_> {
        /// The value the spec demands for property `name` of the innermost node, if it
        /// demands one (other properties are fixed text the tests read back).
        fn expected(&mut self, name: &str, parts: &[&[u8]]) -> Option<Value> {
            let spec = self.spec;
            let (node, addr) = self.node();
            if name == "device_type" && Value::string("memory").is(parts) {
                assert_eq!((node, addr), ("memory", Some(spec.ram_base)));
                self.memory_nodes += 1;
            }
            Some(match (node, name) {
                ("", "#address-cells" | "#size-cells") => Value::cells([2]),
                ("memory", "reg") => Value::reg(spec.ram_base, spec.ram_size),
                (_, "reg") if self.in_cpus() => Value::cells([self.cpus as u32 - 1]),
                (_, "device_type") if self.in_cpus() => Value::string("cpu"),
                ("cpus", "#address-cells") => Value::cells([1]),
                ("cpus", "#size-cells") => Value::cells([0]),
                ("psci", "method") => Value::string("hvc"),
                ("intc", "reg") => {
                    assert_eq!(addr, Some(spec.gic_dist.0));
                    let redist_size = spec.num_vcpus as u64 * GICR_FRAME;
                    let (dist, redist) = (
                        Value::reg(spec.gic_dist.0, spec.gic_dist.1),
                        Value::reg(spec.gic_redist_base, redist_size),
                    );
                    Value::of(&[&dist.bytes[..dist.len], &redist.bytes[..redist.len]])
                }
                ("pl011", "interrupts") => {
                    let uart = spec.uart.as_ref().unwrap();
                    assert_eq!(addr, Some(uart.base));
                    Value::cells([0, uart.irq.unwrap() - 32, 4])
                }
                ("virtio_mmio", "reg") => {
                    let dev = &spec.virtio[self.virtio_nodes - 1];
                    Value::reg(dev.base, dev.size)
                }
                ("virtio_mmio", "interrupts") => {
                    let dev = &spec.virtio[self.virtio_nodes - 1];
                    Value::cells([0, dev.irq.unwrap() - 32, 4])
                }
                ("chosen", "bootargs") => Value::string(&spec.bootargs),
                ("chosen", "linux,initrd-start") => {
                    Value::of(&[&spec.initrd.unwrap().0.to_be_bytes()])
                }
                ("chosen", "linux,initrd-end") => {
                    Value::of(&[&spec.initrd.unwrap().1.to_be_bytes()])
                }
                _ => return None,
            })
        }
    }

    fn device_at(name: &str, base: u64, irq: Option<u32>, compatible: &str) -> Device {
        Device {
            name: name.into(),
            base,
            size: 0x200,
            irq,
            compatible: compatible.into(),
        }
    }

    /// Largest vCPU count and virtio device count the proof covers (the property test
    /// goes further); the tree code loops over any count the same way.
    const PROOF_VCPUS: u64 = if cfg!(kani) { 2 } else { 3 };
    const PROOF_VIRTIO: u64 = if cfg!(kani) { 1 } else { 2 };

    proof! {
        /// For any spec that passes its checks (RAM anywhere, 1-2 vCPUs and 0-1 virtio devices
        /// under Kani, 1-3 and 0-2 in the property test, a UART or none, an initramfs or none), the guest tree's calls form a well-formed tree
        /// (so the writer turns them into a valid blob) that describes exactly one memory node
        /// with the VM's RAM, the vCPUs 0..n in order, redistributors for n vCPUs, PSCI over HVC,
        /// and the devices, interrupts, command line and initramfs it was given.
        /// (The property test also writes the blob and reads it back with the host parser.)
        #[unwind(21)]
        fn guest_tree_describes_exactly_the_vm(src) {
            let ram_base = src.below(1 << 20) << 21;
            let ram_size = (1 + src.below(1 << 12)) << 20;
            let num_vcpus = 1 + src.below(PROOF_VCPUS) as usize;
            let uart = if src.any() {
                Some(device_at("pl011", 0x0900_0000, Some(32 + src.below(988) as u32), "arm,pl011"))
            } else {
                None
            };
            let virtio: Vec<Device> = (0..src.below(PROOF_VIRTIO + 1))
                .map(|slot| device_at("virtio_mmio", 0x0a00_0000 + slot * 0x200, Some(48 + src.below(32) as u32), "virtio,mmio"))
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
                uart,
                virtio,
                extra_mmio: Vec::new(),
                bootargs: String::from("console=ttyAMA0"),
                initrd,
                seeds: None,
            };
            let mut checker = TreeChecker {
                spec: &spec,
                calls: CallModel::default(),
                path: [("", None); TREE_DEPTH],
                depth: 0,
                memory_nodes: 0,
                cpus: 0,
                virtio_nodes: 0,
                checked: 0,
            };
            write_guest_tree(&spec, &mut checker);
            assert_eq!(checker.calls.result(), Ok(()));
            assert_eq!(checker.memory_nodes, 1);
            assert_eq!(checker.cpus, num_vcpus);
            assert_eq!(checker.virtio_nodes, spec.virtio.len());
            // Root cells, memory reg, per vCPU reg and device_type, cpus cells, PSCI, GIC,
            // bootargs, and per device/initramfs what it adds: nothing expected was skipped.
            let expected_checks = 2 + 1 + 2 * num_vcpus + 2 + 1 + 1 + 1
                + usize::from(spec.uart.is_some())
                + 2 * spec.virtio.len()
                + 2 * usize::from(spec.initrd.is_some());
            assert_eq!(checker.checked, expected_checks);
            crate::cover!(num_vcpus == PROOF_VCPUS as usize && spec.virtio.len() == PROOF_VIRTIO as usize && spec.uart.is_some(), "the largest tree: all vCPUs, a UART and virtio devices");
            crate::cover!(spec.initrd.is_some() && spec.uart.is_none(), "an initramfs without a UART");
            #[cfg(not(kani))]
            {
                // The whole way: the blob, read back by the host parser (the `fdt` crate).
                let blob = build_guest_dtb(&spec).unwrap();
                let tree = fdt::Fdt::new(&blob).unwrap();
                assert_eq!(tree.total_size(), blob.len());
                let host = parse_host(&blob).unwrap();
                assert_eq!(host.ram, [(ram_base, ram_size)]);
                assert_eq!(host.cpu_mpidrs, (0..num_vcpus as u64).collect::<Vec<_>>());
                assert_eq!(host.gic_redist, (0x080a_0000, num_vcpus as u64 * 0x2_0000));
                assert_eq!(host.uart.map(|u| u.irq), spec.uart.as_ref().map(|u| u.irq));
                assert_eq!(
                    host.virtio_mmio.iter().map(|d| (d.base, d.irq)).collect::<Vec<_>>(),
                    spec.virtio.iter().map(|d| (d.base, d.irq)).collect::<Vec<_>>()
                );
                assert_eq!(host.timer_irqs, [29, 30, 27, 26]);
                assert_eq!(host.psci_method.as_deref(), Some("hvc"));
                assert_eq!(host.initrd, spec.initrd);
                assert_eq!(host.bootargs, "console=ttyAMA0");
            }
        }
    }
}
