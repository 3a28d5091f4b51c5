//! VM specifications: what a configuration asks for, and the checks that
//! decide whether the machine can give it, before any VM is built.
//!
//! A configuration reaches the hypervisor as nodes under `/chosen` of the
//! host device tree, in the shape of Xen's dom0less binding (the best-known
//! convention for static VMs on Arm; `tools/vmconfig` writes it from a TOML
//! file):
//!
//! ```text
//! chosen {
//!     linux1 {                              // the VM's name
//!         compatible = "xen,domain";
//!         #address-cells = <2>; #size-cells = <2>;
//!         cpus = <2>;                       // vCPUs
//!         memory = <0 0x40000>;             // KiB, 64-bit
//!         vpl011;                           // an emulated PL011 console
//!         hvrust,cpus = <0 1>;              // physical CPUs it runs on (optional)
//!         hvrust,test-device;               // test guests: scratch device (optional)
//!         hvrust,disk = "linux1";           // a virtio-blk disk: the serial of the
//!                                           // machine's virtio-blk device behind it
//!         hvrust,disk-readonly;             // ... which the VM may only read (optional)
//!         module@48000000 {
//!             compatible = "multiboot,kernel", "multiboot,module";
//!             reg = <0 0x48000000 0 0x1a00000>;
//!             bootargs = "console=ttyAMA0";
//!         };
//!         module@4a000000 {
//!             compatible = "multiboot,ramdisk", "multiboot,module";
//!             reg = <0 0x4a000000 0 0x800000>;
//!         };
//!     };
//! };
//! ```
//!
//! Without such nodes the hypervisor's command line (`hv.kernel`, `hv.vcpus`,
//! `hv.mem`) describes one VM, as before. Either way every specification goes
//! through [`validate`]: a problem is reported naming the VM and the field,
//! and no VM is started.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use crate::guest_config::{be_cells, be_number};

/// Smallest guest RAM accepted: room for a small kernel, its device tree and
/// page tables.
pub const MIN_VM_MEM: u64 = 16 << 20;
/// Guest RAM is given in whole MiB.
pub const VM_MEM_GRANULE: u64 = 1 << 20;
/// Longest VM name: it prefixes every console line of the VM.
pub const MAX_NAME_LEN: usize = 16;
/// Most VMs one configuration may list.
pub const MAX_VMS: usize = 8;
/// Physical CPUs a specification can name (bits of [`VmSpec::cpus`]).
pub const MAX_PHYS_CPUS: usize = 64;

/// An image the boot loader placed in host RAM for a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Module {
    pub addr: u64,
    pub size: u64,
}

/// One VM as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSpec {
    pub name: String,
    pub vcpus: usize,
    pub mem_bytes: u64,
    /// Physical CPUs the VM runs on, bit n for CPU n; 0 until [`validate`]
    /// assigns free ones when the configuration named none.
    pub cpus: u64,
    pub kernel: Module,
    pub initrd: Option<Module>,
    pub bootargs: String,
    /// An emulated PL011 console (`vpl011`).
    pub console: bool,
    /// The scratch test device and a no-op virtio-mmio transport, for the
    /// bare-metal test guests (`hvrust,test-device`, or `hv.testdev=on`).
    pub test_device: bool,
    /// Time-share the CPUs (`hvrust,time-shared`) instead of owning them.
    pub time_shared: bool,
    /// A virtio-blk disk (`hvrust,disk`).
    pub disk: Option<DiskSpec>,
    /// A virtio-net NIC on a switch (`hvrust,network`, `hvrust,mac`).
    pub nic: Option<NicSpec>,
}

/// A VM's network card: the switch (network) it is plugged into, by name,
/// and its MAC address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicSpec {
    pub network: String,
    pub mac: [u8; 6],
}

/// A VM's disk: which physical virtio-blk device of the machine stores it
/// (the one whose serial, its GET_ID answer, is `serial`; `tools/run`
/// attaches one per configured disk file) and whether the VM may write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskSpec {
    pub serial: String,
    pub read_only: bool,
}

/// Longest virtio-blk serial (the GET_ID answer is 20 bytes).
pub const MAX_DISK_SERIAL: usize = 20;

impl VmSpec {
    /// Physical CPU of vCPU `index`: the `index`-th CPU of [`VmSpec::cpus`],
    /// wrapping round when a time-shared VM has more vCPUs than CPUs.
    pub fn cpu_of(&self, index: usize) -> Option<usize> {
        let count = self.cpus.count_ones() as usize;
        if count == 0 {
            return None;
        }
        nth_set_bit(self.cpus, index % count)
    }
}

/// The position of the `n`-th set bit of `mask`, counting from bit 0.
pub fn nth_set_bit(mask: u64, n: usize) -> Option<usize> {
    let mut rest = mask;
    for _ in 0..n {
        rest &= rest.wrapping_sub(1);
    }
    (rest != 0).then(|| rest.trailing_zeros() as usize)
}

/// What the machine offers VMs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    pub cpu_count: usize,
    /// Host RAM (base, size).
    pub ram: (u64, u64),
    /// Host RAM VMs' images may not overlap: the hypervisor, its device tree.
    pub reserved: Vec<(u64, u64)>,
    /// Host RAM left for guest RAM once the hypervisor and the images are
    /// accounted for.
    pub free_ram: u64,
    /// Most vCPUs one VM may have.
    pub max_vcpus: usize,
}

/// A configuration problem: which VM, which field, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    pub vm: String,
    pub field: &'static str,
    pub problem: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VM '{}', {}: {}", self.vm, self.field, self.problem)
    }
}

fn error(vm: &str, field: &'static str, problem: impl ToString) -> SpecError {
    SpecError {
        vm: vm.to_string(),
        field,
        problem: problem.to_string(),
    }
}

/// Why a VM cannot have the CPUs it asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuProblem {
    NoVcpus,
    TooManyVcpus {
        max: usize,
    },
    NoSuchCpu {
        cpu: usize,
        cpu_count: usize,
    },
    /// Another VM (its index) already runs on `cpu`.
    Taken {
        cpu: usize,
        by: usize,
    },
    /// More vCPUs than CPUs in a VM that owns its CPUs.
    NeedsTimeSharing {
        vcpus: usize,
        cpus: usize,
    },
    /// No CPU is left for a VM that named none.
    NoneFree {
        vcpus: usize,
        free: usize,
    },
}

/// One VM's CPU request: its vCPU count and the CPUs it named (0: any).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuRequest {
    pub vcpus: usize,
    pub cpus: u64,
    /// The VM time-shares its CPUs (with its own vCPUs and other
    /// time-shared VMs) instead of owning them.
    pub time_shared: bool,
}

fn existing_cpus(cpu_count: usize) -> u64 {
    if cpu_count >= MAX_PHYS_CPUS {
        u64::MAX
    } else {
        (1u64 << cpu_count) - 1
    }
}

/// Give every VM its physical CPUs. A partitioned VM owns its CPUs: each
/// goes to no other VM, and it needs one per vCPU. Time-shared VMs share
/// their CPUs with each other (never with a partitioned VM) and may have
/// more vCPUs than CPUs. VMs that named CPUs get those; then partitioned
/// VMs that named none get the lowest CPUs left, one per vCPU; then
/// time-shared VMs that named none get every CPU no partitioned VM owns.
/// On success `out[i]` is VM i's CPU mask: non-empty, all existing,
/// disjoint from every other VM's unless both are time-shared, and with at
/// least `vcpus` CPUs if partitioned.
pub fn assign_cpus(
    requests: &[CpuRequest],
    cpu_count: usize,
    max_vcpus: usize,
    out: &mut [u64],
) -> Result<(), (usize, CpuProblem)> {
    let existing = existing_cpus(cpu_count);
    // CPUs owned by partitioned VMs, and CPUs named by time-shared ones.
    let mut owned = 0u64;
    let mut shared = 0u64;
    let clash_with = |out: &[u64], i: usize, clash: u64| {
        let cpu = clash.trailing_zeros() as usize;
        let by = out[..i]
            .iter()
            .position(|mask| mask & (1 << cpu) != 0)
            .unwrap_or(0);
        (i, CpuProblem::Taken { cpu, by })
    };
    for (i, request) in requests.iter().enumerate() {
        if request.vcpus == 0 {
            return Err((i, CpuProblem::NoVcpus));
        }
        if request.vcpus > max_vcpus {
            return Err((i, CpuProblem::TooManyVcpus { max: max_vcpus }));
        }
        if request.cpus == 0 {
            continue;
        }
        let missing = request.cpus & !existing;
        if missing != 0 {
            let cpu = missing.trailing_zeros() as usize;
            return Err((i, CpuProblem::NoSuchCpu { cpu, cpu_count }));
        }
        let clash = request.cpus
            & if request.time_shared {
                owned
            } else {
                owned | shared
            };
        if clash != 0 {
            return Err(clash_with(out, i, clash));
        }
        let cpus = request.cpus.count_ones() as usize;
        if request.vcpus > cpus && !request.time_shared {
            let vcpus = request.vcpus;
            return Err((i, CpuProblem::NeedsTimeSharing { vcpus, cpus }));
        }
        if request.time_shared {
            shared |= request.cpus;
        } else {
            owned |= request.cpus;
        }
        out[i] = request.cpus;
    }
    for (i, request) in requests.iter().enumerate() {
        if request.cpus != 0 || request.time_shared {
            continue;
        }
        let free = existing & !owned & !shared;
        let Some(last) = nth_set_bit(free, request.vcpus - 1) else {
            let free = free.count_ones() as usize;
            let vcpus = request.vcpus;
            return Err((i, CpuProblem::NoneFree { vcpus, free }));
        };
        // The lowest `vcpus` free CPUs: every free CPU up to and including
        // the `vcpus`-th one.
        let upto = if last == 63 {
            u64::MAX
        } else {
            (1u64 << (last + 1)) - 1
        };
        out[i] = free & upto;
        owned |= out[i];
    }
    for (i, request) in requests.iter().enumerate() {
        if request.cpus != 0 || !request.time_shared {
            continue;
        }
        let pool = existing & !owned;
        if pool == 0 {
            let vcpus = request.vcpus;
            return Err((i, CpuProblem::NoneFree { vcpus, free: 0 }));
        }
        out[i] = pool;
    }
    Ok(())
}

impl fmt::Display for CpuProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CpuProblem::NoVcpus => write!(f, "a VM needs at least one vCPU"),
            CpuProblem::TooManyVcpus { max } => write!(f, "at most {max} vCPUs per VM"),
            CpuProblem::NoSuchCpu { cpu, cpu_count } => {
                write!(f, "CPU {cpu} does not exist (the machine has {cpu_count})")
            }
            CpuProblem::Taken { cpu, .. } => write!(f, "CPU {cpu} already belongs to another VM"),
            CpuProblem::NeedsTimeSharing { vcpus, cpus } => write!(
                f,
                "{vcpus} vCPUs on {cpus} CPU(s) need time-sharing (`time_shared = true`)"
            ),
            CpuProblem::NoneFree { vcpus, free } => {
                write!(f, "{vcpus} vCPUs asked, {free} CPU(s) left unassigned")
            }
        }
    }
}

/// Why an image cannot be where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeProblem {
    Empty,
    /// Its end is beyond 2^64.
    Wraps,
    OutsideRam,
    /// Overlaps reserved range `j` (the hypervisor, its device tree).
    OverlapsReserved(usize),
    /// Overlaps image `j` (of this or another VM).
    Overlaps(usize),
}

impl fmt::Display for RangeProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RangeProblem::Empty => write!(f, "empty image"),
            RangeProblem::Wraps => write!(f, "image ends beyond the address space"),
            RangeProblem::OutsideRam => write!(f, "image is not inside host RAM"),
            RangeProblem::OverlapsReserved(_) => {
                write!(f, "image overlaps the hypervisor or its device tree")
            }
            RangeProblem::Overlaps(_) => write!(f, "image overlaps another image"),
        }
    }
}

/// Whether `[a, a + a_size)` and `[b, b + b_size)` share a byte (sizes
/// already checked not to wrap).
fn overlap(a: u64, a_size: u64, b: u64, b_size: u64) -> bool {
    a < b.saturating_add(b_size) && b < a.saturating_add(a_size)
}

/// Check that every image `(addr, size)` is non-empty, inside `ram`, clear
/// of every `reserved` range and of every other image. Returns the first
/// offending image's index.
pub fn check_images(
    images: &[(u64, u64)],
    ram: (u64, u64),
    reserved: &[(u64, u64)],
) -> Result<(), (usize, RangeProblem)> {
    let ram_end = ram.0.checked_add(ram.1);
    for (i, &(addr, size)) in images.iter().enumerate() {
        if size == 0 {
            return Err((i, RangeProblem::Empty));
        }
        let Some(end) = addr.checked_add(size) else {
            return Err((i, RangeProblem::Wraps));
        };
        if addr < ram.0 || ram_end.is_none_or(|ram_end| end > ram_end) {
            return Err((i, RangeProblem::OutsideRam));
        }
        for (j, &(r, r_size)) in reserved.iter().enumerate() {
            if overlap(addr, size, r, r_size) {
                return Err((i, RangeProblem::OverlapsReserved(j)));
            }
        }
        for (j, &(other, other_size)) in images[..i].iter().enumerate() {
            if overlap(addr, size, other, other_size) {
                return Err((i, RangeProblem::Overlaps(j)));
            }
        }
    }
    Ok(())
}

fn name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("a VM needs a name");
    }
    if name.len() > MAX_NAME_LEN {
        return Some("names are at most 16 characters");
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if !name.chars().all(allowed) || !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Some("names start with a letter and use letters, digits, '-' and '_'");
    }
    None
}

/// Check `specs` against `machine` and fill in the CPUs of VMs that named
/// none. On error nothing should be started: the error names the VM and the
/// field.
pub fn validate(specs: &mut [VmSpec], machine: &Machine) -> Result<(), SpecError> {
    if specs.is_empty() {
        return Err(error("-", "vms", "no VM is configured"));
    }
    if specs.len() > MAX_VMS {
        return Err(error("-", "vms", alloc::format!("at most {MAX_VMS} VMs")));
    }
    for (i, spec) in specs.iter().enumerate() {
        if let Some(problem) = name_problem(&spec.name) {
            return Err(error(&spec.name, "name", problem));
        }
        if specs[..i].iter().any(|other| other.name == spec.name) {
            return Err(error(&spec.name, "name", "two VMs have this name"));
        }
        if let Some(nic) = &spec.nic {
            if nic.network.is_empty() || nic.network.len() > MAX_NAME_LEN {
                return Err(error(
                    &spec.name,
                    "network",
                    "a network name has 1 to 16 characters",
                ));
            }
            if nic.mac[0] & 1 != 0 || nic.mac == [0; 6] {
                return Err(error(&spec.name, "mac", "not a unicast address"));
            }
            if let Some(other) = specs[..i]
                .iter()
                .find(|o| o.nic.as_ref().is_some_and(|n| n.mac == nic.mac))
            {
                return Err(error(
                    &spec.name,
                    "mac",
                    alloc::format!("VM '{}' has the same address", other.name),
                ));
            }
        }
        if let Some(disk) = &spec.disk {
            let serial = &disk.serial;
            if serial.is_empty()
                || serial.len() > MAX_DISK_SERIAL
                || !serial.bytes().all(|b| b.is_ascii_graphic())
            {
                return Err(error(
                    &spec.name,
                    "disk",
                    "the serial must be 1 to 20 printable characters",
                ));
            }
            let shared = specs[..i]
                .iter()
                .any(|other| other.disk.as_ref().is_some_and(|d| d.serial == *serial));
            if shared {
                return Err(error(
                    &spec.name,
                    "disk",
                    alloc::format!("disk '{serial}' is already another VM's"),
                ));
            }
        }
        if spec.mem_bytes < MIN_VM_MEM {
            let problem = alloc::format!(
                "{} MiB is too little (at least {} MiB)",
                spec.mem_bytes >> 20,
                MIN_VM_MEM >> 20
            );
            return Err(error(&spec.name, "memory", problem));
        }
        if !spec.mem_bytes.is_multiple_of(VM_MEM_GRANULE) {
            return Err(error(&spec.name, "memory", "not a whole number of MiB"));
        }
        // The kernel and initramfs are copied into guest RAM with the
        // device tree; they must fit with room to spare.
        let images = spec.kernel.size + spec.initrd.map_or(0, |m| m.size);
        if images.saturating_mul(2) > spec.mem_bytes {
            let problem = alloc::format!(
                "{} MiB cannot hold the kernel and initramfs ({} MiB) and leave them as much again",
                spec.mem_bytes >> 20,
                images.div_ceil(1 << 20)
            );
            return Err(error(&spec.name, "memory", problem));
        }
        if spec.bootargs.len() > 2048 {
            return Err(error(&spec.name, "cmdline", "longer than 2048 bytes"));
        }
    }

    let requests: Vec<CpuRequest> = specs
        .iter()
        .map(|s| CpuRequest {
            vcpus: s.vcpus,
            cpus: s.cpus,
            time_shared: s.time_shared,
        })
        .collect();
    let mut cpus = alloc::vec![0u64; specs.len()];
    if let Err((i, problem)) =
        assign_cpus(&requests, machine.cpu_count, machine.max_vcpus, &mut cpus)
    {
        let field = match problem {
            CpuProblem::NoVcpus | CpuProblem::TooManyVcpus { .. } => "vcpus",
            _ => "cpus",
        };
        let mut message = problem.to_string();
        if let CpuProblem::Taken { by, .. } = problem {
            message = alloc::format!("{message} ('{}')", specs[by].name);
        }
        return Err(error(&specs[i].name, field, message));
    }

    // Images: (addr, size) with the VM and field each belongs to.
    let mut images = Vec::new();
    let mut owners = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        images.push((spec.kernel.addr, spec.kernel.size));
        owners.push((i, "kernel"));
        if let Some(initrd) = spec.initrd {
            images.push((initrd.addr, initrd.size));
            owners.push((i, "initramfs"));
        }
    }
    if let Err((k, problem)) = check_images(&images, machine.ram, &machine.reserved) {
        let (vm, field) = owners[k];
        let mut message = problem.to_string();
        if let RangeProblem::Overlaps(j) = problem {
            let (other_vm, other_field) = owners[j];
            message = alloc::format!(
                "{message} (the {other_field} of '{}')",
                specs[other_vm].name
            );
        }
        return Err(error(&specs[vm].name, field, message));
    }

    let mut total: u64 = 0;
    for spec in specs.iter() {
        total = total.saturating_add(spec.mem_bytes);
        if total > machine.free_ram {
            let problem = alloc::format!(
                "not enough host RAM: the VMs up to this one need {} MiB, {} MiB is free",
                total >> 20,
                machine.free_ram >> 20
            );
            return Err(error(&spec.name, "memory", problem));
        }
    }

    for (spec, mask) in specs.iter_mut().zip(cpus) {
        spec.cpus = mask;
    }
    // A time-shared CPU keeps a slot per vCPU placed on it.
    let mut placed = [0usize; MAX_PHYS_CPUS];
    for spec in specs.iter() {
        for index in 0..spec.vcpus {
            let Some(cpu) = spec.cpu_of(index) else {
                continue;
            };
            placed[cpu] += 1;
            if placed[cpu] > crate::sched::MAX_SLOTS {
                let problem = alloc::format!(
                    "CPU {cpu} would run more than {} vCPUs",
                    crate::sched::MAX_SLOTS
                );
                return Err(error(&spec.name, "cpus", problem));
            }
        }
    }
    Ok(())
}

/// The VMs to start: those configured under `/chosen` of the host device
/// tree `dtb`, or else one VM (`vm1`) from the hypervisor's command line
/// (`hv.kernel`, `hv.vcpus`, `hv.mem`, the initramfs QEMU announced, the
/// text after ` -- `). Not yet validated: see [`validate`].
pub fn vm_specs(
    dtb: &[u8],
    host: &crate::guest_config::HostInfo,
    args: &crate::guest_config::HvArgs,
) -> Result<Vec<VmSpec>, SpecError> {
    let tree = fdt::Fdt::new(dtb).map_err(|_| error("-", "device tree", "not a device tree"))?;
    let specs = parse_chosen_vms(&tree)?;
    if !specs.is_empty() {
        return Ok(specs);
    }
    let name = "vm1";
    let Some((addr, size)) = args.guest_kernel else {
        return Err(error(
            name,
            "kernel",
            "none: configure VMs under /chosen (tools/run --config) or pass hv.kernel=ADDR,SIZE",
        ));
    };
    let mem_mib = args.guest_mem_mib.unwrap_or(128);
    Ok(alloc::vec![VmSpec {
        name: name.to_string(),
        vcpus: args.guest_vcpus.unwrap_or(1),
        mem_bytes: mem_mib.saturating_mul(1 << 20),
        cpus: 0,
        kernel: Module { addr, size },
        initrd: host.initrd.map(|(start, end)| Module {
            addr: start,
            size: end.saturating_sub(start),
        }),
        bootargs: args.guest_bootargs.clone(),
        console: true,
        test_device: args.test_device,
        time_shared: false,
        disk: args.disk.map(|read_only| DiskSpec {
            serial: name.to_string(),
            read_only,
        }),
        nic: None,
    }])
}

/// Read the VM specifications under `/chosen` (Xen's dom0less binding, see
/// the module comment). An empty list means the device tree configures no
/// VM (the command line then does).
pub fn parse_chosen_vms(tree: &fdt::Fdt) -> Result<Vec<VmSpec>, SpecError> {
    let mut specs = Vec::new();
    let Some(chosen) = tree.find_node("/chosen") else {
        return Ok(specs);
    };
    for node in chosen.children() {
        let is_domain = node
            .compatible()
            .is_some_and(|c| c.all().any(|c| c == "xen,domain"));
        if !is_domain {
            continue;
        }
        specs.push(parse_domain(&node)?);
    }
    Ok(specs)
}

fn parse_domain(node: &fdt::node::FdtNode) -> Result<VmSpec, SpecError> {
    let name = node.name.split('@').next().unwrap_or("").to_string();
    let prop = |p: &str| node.property(p).map(|p| p.value);
    let vcpus = match prop("cpus") {
        Some(v) if v.len() == 4 => be_number(v).unwrap_or(0) as usize,
        Some(_) => return Err(error(&name, "vcpus", "`cpus` is not one 32-bit cell")),
        None => return Err(error(&name, "vcpus", "missing (`cpus` property)")),
    };
    let mem_kib = match prop("memory").map(be_number) {
        Some(Some(kib)) => kib,
        Some(None) => return Err(error(&name, "memory", "`memory` is not one or two cells")),
        None => return Err(error(&name, "memory", "missing (`memory` property, KiB)")),
    };
    let Some(mem_bytes) = mem_kib.checked_mul(1024) else {
        return Err(error(&name, "memory", "larger than the address space"));
    };
    let mut cpus = 0u64;
    if let Some(list) = prop("hvrust,cpus") {
        if list.is_empty() || !list.len().is_multiple_of(4) {
            return Err(error(&name, "cpus", "`hvrust,cpus` is not a list of cells"));
        }
        for cpu in be_cells(list) {
            if cpu as usize >= MAX_PHYS_CPUS {
                return Err(error(
                    &name,
                    "cpus",
                    alloc::format!("CPU {cpu} does not exist"),
                ));
            }
            cpus |= 1 << cpu;
        }
    }
    let address_cells = prop("#address-cells").and_then(be_number).unwrap_or(2) as usize;
    let size_cells = prop("#size-cells").and_then(be_number).unwrap_or(1) as usize;
    let mut kernel = None;
    let mut initrd = None;
    let mut bootargs = String::new();
    for module in node.children() {
        let compatible: Vec<&str> = module
            .compatible()
            .map(|c| c.all().collect())
            .unwrap_or_default();
        let field = if compatible.contains(&"multiboot,kernel") {
            "kernel"
        } else if compatible.contains(&"multiboot,ramdisk") {
            "initramfs"
        } else {
            continue;
        };
        let reg = module.property("reg").map(|p| p.value).unwrap_or(&[]);
        let (a, s) = (address_cells * 4, size_cells * 4);
        if !(1..=2).contains(&address_cells) || !(1..=2).contains(&size_cells) || reg.len() != a + s
        {
            return Err(error(&name, field, "`reg` is not one (address, size) pair"));
        }
        let image = Module {
            addr: be_number(&reg[..a]).unwrap_or(0),
            size: be_number(&reg[a..]).unwrap_or(0),
        };
        let slot = if field == "kernel" {
            &mut kernel
        } else {
            &mut initrd
        };
        if slot.replace(image).is_some() {
            return Err(error(&name, field, "given twice"));
        }
        if field == "kernel" {
            if let Some(args) = module.property("bootargs").and_then(|p| p.as_str()) {
                bootargs = args.to_string();
            }
        }
    }
    let Some(kernel) = kernel else {
        return Err(error(
            &name,
            "kernel",
            "missing (a `multiboot,kernel` module)",
        ));
    };
    let disk = match node.property("hvrust,disk") {
        None => None,
        Some(p) => Some(DiskSpec {
            serial: p
                .as_str()
                .ok_or_else(|| error(&name, "disk", "`hvrust,disk` is not a string"))?
                .to_string(),
            read_only: node.property("hvrust,disk-readonly").is_some(),
        }),
    };
    let nic = match node.property("hvrust,network") {
        None => None,
        Some(p) => {
            let network = p
                .as_str()
                .ok_or_else(|| error(&name, "network", "`hvrust,network` is not a string"))?
                .to_string();
            let mac: [u8; 6] = node
                .property("hvrust,mac")
                .and_then(|p| p.value.try_into().ok())
                .ok_or_else(|| error(&name, "mac", "`hvrust,mac` is not 6 bytes"))?;
            Some(NicSpec { network, mac })
        }
    };
    Ok(VmSpec {
        name,
        vcpus,
        mem_bytes,
        cpus,
        kernel,
        initrd,
        bootargs,
        console: node.property("vpl011").is_some(),
        test_device: node.property("hvrust,test-device").is_some(),
        time_shared: node.property("hvrust,time-shared").is_some(),
        disk,
        nic,
    })
}

#[cfg(test)]
mod tests;

#[cfg(any(test, kani))]
mod proofs;
