//! Boot and bring-up: from the first instruction in Rust to the first guest.

#[macro_use]
pub mod guest_log;
mod console;
mod devices;
mod el1_regs;
mod exits;
mod heap;
mod hypercall;
mod inject;
mod irq;
mod lifecycle;
mod lock;
mod logger;
mod management;
mod memory;
mod net;
mod percpu;
mod phys_blk;
mod run_loop;
mod timeshare;
mod vcpu;
mod vm;

use alloc::boxed::Box;
use core::sync::atomic::{AtomicUsize, Ordering};

use hv_arch::{cpu, gic, mmu, read_sysreg, vectors};
use hvcore::exit_stats::{total, total_events, ExitCause};
use hvcore::fdt_nops::without_nops;
use hvcore::guest_config::{parse_host, parse_hv_args};
use hvcore::log_limit::Cause;
use hvcore::sysreg::{HwIdValues, IdRegisters};
use hvcore::vm_spec::{validate, vm_specs, Machine};
use log::{error, info, LevelFilter};

use vm::Vm;

/// SGI one physical CPU sends another to make its vCPU exit and look at new
/// pending virtual interrupts.
pub const KICK_SGI: u32 = 0;
/// PPI of the GIC virtual-interface maintenance interrupt.
pub const MAINTENANCE_INTID: u32 = 25;

/// Where RAM starts on QEMU virt, and how much of it the EL2 map covers.
const RAM_WINDOW_START: u64 = 0x4000_0000;
const RAM_WINDOW_END: u64 = RAM_WINDOW_START + (16 << 30);

extern "C" {
    static __image_end: u8;
}

static REDIST_REGION: AtomicUsize = AtomicUsize::new(0);
static REDIST_REGION_SIZE: AtomicUsize = AtomicUsize::new(0);

fn image_end() -> u64 {
    // Only the linker symbol's address is used.
    core::ptr::addr_of!(__image_end) as u64
}

/// The boot CPU, from `boot.rs`, with the MMU off and the DTB address.
#[no_mangle]
extern "C" fn hv_primary_main(dtb_pa: u64) -> ! {
    mmu::build_identity_map(RAM_WINDOW_START, RAM_WINDOW_END);
    mmu::enable();
    vectors::install();
    vcpu::clear_current();
    heap::init();
    logger::init(LevelFilter::Info);
    info!(
        "hypervisor at EL{} on cpu{}, device tree at {dtb_pa:#x}",
        (read_sysreg!("CurrentEL") >> 2) & 3,
        cpu::current_index()
    );
    vcpu::mark_boot_cpu_started();
    if let Err(message) = boot(dtb_pa) {
        error!("boot failed: {message}");
        cpu::halt();
    }
    unreachable!("boot() starts the first vCPU");
}

fn boot(dtb_pa: u64) -> Result<(), alloc::string::String> {
    // SAFETY: QEMU placed a device tree at dtb_pa; its header gives its size.
    let dtb = unsafe {
        let header = core::slice::from_raw_parts(dtb_pa as *const u8, 8);
        let size = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        core::slice::from_raw_parts(dtb_pa as *const u8, size.min(2 << 20))
    };
    // A tree QEMU was given (-dtb, tools/run --config) and edited has NOPs.
    let tree = without_nops(dtb).unwrap_or_else(|| dtb.to_vec());
    let host = parse_host(&tree).map_err(|e| alloc::format!("host device tree: {e:?}"))?;
    let args = parse_hv_args(&host.bootargs).map_err(|e| alloc::format!("command line: {e:?}"))?;
    if let Some(level) = args.log_level {
        logger::set_level(level);
    }
    info!(
        "host: {} CPU(s) ({}), RAM {:x?}",
        host.cpu_count, host.cpu_compatible, host.ram
    );

    let (ram_base, ram_size) = *host.ram.first().ok_or("no RAM in the device tree")?;
    // The boot stub QEMU put below us, the hypervisor image with BSS, and
    // the device tree: no VM image may overlap them.
    let hypervisor = (ram_base, image_end() - ram_base);
    let host_tree = (dtb_pa, dtb.len() as u64);
    let mut specs = vm_specs(&tree, &host, &args).map_err(|e| alloc::format!("{e}"))?;
    let images: u64 = specs
        .iter()
        .map(|s| s.kernel.size + s.initrd.map_or(0, |m| m.size))
        .sum();
    let machine = Machine {
        cpu_count: host.cpu_count,
        ram: (ram_base, ram_size),
        reserved: alloc::vec![hypervisor, host_tree],
        free_ram: ram_size.saturating_sub(hypervisor.1 + host_tree.1 + images),
        max_vcpus: hvcore::psci::MAX_VCPUS,
    };
    // Nothing is started unless every VM's specification holds.
    validate(&mut specs, &machine).map_err(|e| alloc::format!("configuration: {e}"))?;
    for spec in &specs {
        info!(
            "VM '{}': {} vCPU(s) on CPUs {:#x}, {} MiB",
            spec.name,
            spec.vcpus,
            spec.cpus,
            spec.mem_bytes >> 20
        );
    }
    memory::init_frames(ram_base, ram_size);
    {
        let mut frames = memory::frames().lock();
        for (addr, size) in [hypervisor, host_tree] {
            frames
                .reserve(addr, size)
                .map_err(|e| alloc::format!("{e:?}"))?;
        }
        for spec in &specs {
            for image in core::iter::once(spec.kernel).chain(spec.initrd) {
                frames
                    .reserve(image.addr, image.size)
                    .map_err(|e| alloc::format!("VM '{}': {e:?}", spec.name))?;
            }
        }
        info!(
            "frame allocator: {} of {} frames free",
            frames.free_count(),
            frames.total_frames()
        );
    }

    gic::init_distributor(host.gic_dist.0 as usize);
    REDIST_REGION.store(host.gic_redist.0 as usize, Ordering::Relaxed);
    REDIST_REGION_SIZE.store(host.gic_redist.1 as usize, Ordering::Relaxed);
    if !gic::init_cpu(host.gic_redist.0 as usize, host.gic_redist.1 as usize) {
        return Err("no redistributor for the boot CPU".into());
    }
    info!("GICv3: {} list registers", gic::list_register_count());
    vcpu::ID_REGISTERS.call_once(|| IdRegisters::sanitize(&read_id_registers()));

    let cntvoff = read_sysreg!("CNTPCT_EL0");
    // The machine's virtio-blk devices, started only when a VM has a disk.
    let mut disks = if specs.iter().any(|s| s.disk.is_some()) {
        phys_blk::probe(&host.virtio_mmio)
    } else {
        alloc::vec::Vec::new()
    };
    let mut vms: alloc::vec::Vec<&'static Vm> = alloc::vec::Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let disk = match &spec.disk {
            None => None,
            Some(wanted) => {
                let at = disks.iter().position(|d| d.serial == wanted.serial).ok_or_else(|| {
                    alloc::format!(
                        "configuration: VM '{}', disk: no virtio-blk device with serial '{}' on the machine (tools/run attaches one per configured disk file)",
                        spec.name, wanted.serial
                    )
                })?;
                let mut disk = disks.swap_remove(at);
                if wanted.read_only {
                    disk.set_read_only();
                }
                if args.disk_interrupts.unwrap_or(DISK_INTERRUPTS_BY_DEFAULT)
                    && !disk.interrupt_when_done(args.disk_settle_us.unwrap_or(DISK_SETTLE_US))
                {
                    log::warn!(
                        "VM '{}': its disk has no interrupt; requests are waited for",
                        spec.name
                    );
                }
                Some(disk)
            }
        };
        let vmid = u16::try_from(i + 1).map_err(|_| "too many VMs")?;
        // A lone VM may run its kernel where the loader put it (restarting
        // it resets the machine, which reloads the images).
        let reserved = [hypervisor, host_tree];
        let in_place_clear_of = (specs.len() == 1).then_some(&reserved[..]);
        let vm = Vm::create(vmid, &host, &args, spec, cntvoff, in_place_clear_of, disk)
            .map_err(|e| alloc::format!("VM '{}': {e}", spec.name))?;
        vms.push(Box::leak(Box::new(vm)));
    }
    if vms.len() > 1 {
        // Several VMs share the console: each line says whose it is.
        for vm in &vms {
            console::set_tag(vm.vmid, &vm.name);
        }
    }
    // Disks whose requests complete on their device's interrupt: it goes
    // to the CPU of the VM's first vCPU.
    let disk_irqs: alloc::vec::Vec<(u32, &'static Vm)> = vms
        .iter()
        .filter_map(|&vm| vm.disk_irq().map(|irq| (irq, vm)))
        .collect();
    for &(irq, vm) in &disk_irqs {
        gic::enable_spi(irq, vm.cpu_of(0) as u64);
    }
    DISK_IRQS.call_once(|| disk_irqs);
    net::init(&vms);
    timeshare::place(&vms)?;
    lifecycle::register(vms.clone());
    // From here on the physical UART is the hypervisor's: each VM gets an
    // emulated one, fed from the physical receive interrupt, which goes to
    // a CPU of a running VM (the first, until it stops).
    console::take_uart();
    lifecycle::route_console_input();
    // Each VM's first vCPU starts on its first CPU; the boot CPU runs its
    // own VM's, or waits for a vCPU to be started on it.
    let here = cpu::current_index();
    let mut local = None;
    for &vm in &vms {
        if vm.cpu_of(0) == here && !timeshare::is_shared(here) {
            local = Some(vm);
        } else {
            vcpu::request_start(vm, 0, vm.entry_ipa, vm.dtb_ipa);
        }
    }
    match local {
        Some(vm) => vcpu::run(vm, 0, vm.entry_ipa, vm.dtb_ipa),
        None => vcpu::wait_for_start(),
    }
}

/// A secondary CPU started by PSCI CPU_ON, MMU still off.
#[no_mangle]
extern "C" fn hv_secondary_main(cpu_index: usize) -> ! {
    mmu::enable();
    vectors::install();
    vcpu::clear_current();
    let region = REDIST_REGION.load(Ordering::Relaxed);
    let size = REDIST_REGION_SIZE.load(Ordering::Relaxed);
    if !gic::init_cpu(region, size) {
        error!("cpu{cpu_index}: no redistributor");
        cpu::halt();
    }
    info!("cpu{cpu_index} online");
    vcpu::wait_for_start()
}

/// Whether disk requests complete on the physical device's interrupt
/// unless `hv.diskirq` says otherwise (README: "Where disk requests run").
const DISK_INTERRUPTS_BY_DEFAULT: bool = true;

/// How long a notification waits for quick answers before it leaves the
/// rest to the disk's interrupt, unless `hv.disksettle` says otherwise.
const DISK_SETTLE_US: u64 = 0;

/// Physical interrupts of the devices storing VM disks, and their VMs.
static DISK_IRQS: spin::Once<alloc::vec::Vec<(u32, &'static Vm)>> = spin::Once::new();

/// The VM whose disk's device raises physical interrupt `intid`.
pub fn disk_of_irq(intid: u32) -> Option<&'static Vm> {
    DISK_IRQS
        .get()?
        .iter()
        .find(|(irq, _)| *irq == intid)
        .map(|(_, vm)| *vm)
}

fn read_id_registers() -> HwIdValues {
    HwIdValues {
        id_aa64pfr0: read_sysreg!("ID_AA64PFR0_EL1"),
        id_aa64pfr1: read_sysreg!("ID_AA64PFR1_EL1"),
        id_aa64dfr0: read_sysreg!("ID_AA64DFR0_EL1"),
        id_aa64dfr1: read_sysreg!("ID_AA64DFR1_EL1"),
        id_aa64isar0: read_sysreg!("ID_AA64ISAR0_EL1"),
        id_aa64isar1: read_sysreg!("ID_AA64ISAR1_EL1"),
        id_aa64mmfr0: read_sysreg!("ID_AA64MMFR0_EL1"),
        id_aa64mmfr1: read_sysreg!("ID_AA64MMFR1_EL1"),
        id_aa64mmfr2: read_sysreg!("ID_AA64MMFR2_EL1"),
        id_aa64afr0: read_sysreg!("ID_AA64AFR0_EL1"),
        id_aa64afr1: read_sysreg!("ID_AA64AFR1_EL1"),
        ..HwIdValues::default()
    }
}

/// Print how often the guest exited, by cause, and what it triggered (at
/// power-off): suppressed log lines no summary reported yet, then
/// `[hv] exits: ...`, `[hv] events: ...` and `[hv] console: ...` lines.
pub fn print_exit_counters(vm: &Vm) {
    let mut line = alloc::string::String::from("exits:");
    let mut sum = 0;
    for cause in ExitCause::ALL {
        let n = total(&vcpu::COUNTERS, cause);
        sum += n;
        line.push_str(&alloc::format!(" {}={n}", cause.name()));
    }
    let mut events = alloc::string::String::from("events:");
    let (mut printed, mut suppressed) = (0, 0);
    {
        let mut limiter = vm.log_limit.lock();
        for cause in Cause::ALL {
            let pending = limiter.drain(cause);
            if pending > 0 {
                log::warn!(
                    "vm{}: {pending} more {} lines suppressed",
                    vm.vmid,
                    cause.name()
                );
            }
            let counts = limiter.counts(cause);
            printed += counts.printed;
            suppressed += counts.suppressed;
            let n = total_events(&guest_log::EVENTS, cause);
            events.push_str(&alloc::format!(" {}={n}", cause.name()));
        }
    }
    logger::print_raw(format_args!("[hv] {line} total={sum}\n"));
    logger::print_raw(format_args!(
        "[hv] {events} lines-printed={printed} lines-suppressed={suppressed}\n"
    ));
    let (zeroed, chunks, chunk_size) = vm.ram_zeroing_statistics();
    logger::print_raw(format_args!(
        "[hv] ram: chunks-zeroed={zeroed} chunks={chunks} chunk-kib={}\n",
        chunk_size >> 10
    ));
    let (switches, ticks) = timeshare::switch_statistics();
    if switches > 0 {
        logger::print_raw(format_args!(
            "[hv] timeshare: switches={switches} switch-ticks={ticks} counter-hz={}\n",
            read_sysreg!("CNTFRQ_EL0")
        ));
    }
    let (dropped, escaped) = console::statistics();
    logger::print_raw(format_args!(
        "[hv] console: tx-dropped={dropped} guest-lines-escaped={escaped}\n"
    ));
    for vm in lifecycle::vms() {
        print_device_counters(vm);
    }
}

/// A VM's NIC and disk counters (`[hv] net vmN: ...`, `[hv] disk vmN:
/// ...`), at power-off and for the console's `stats`.
pub fn print_device_counters(vm: &Vm) {
    if let (Some(c), Some(p)) = (vm.net_statistics(), net::port_counters(vm)) {
        logger::print_raw(format_args!(
            "[hv] net vm{}: tx={} tx-bad={} rx={} rx-dropped={} switched={} flooded={} spoofed={} bad-length={} over-budget={}\n",
            vm.vmid,
            c.tx_frames,
            c.tx_bad,
            c.rx_frames,
            c.rx_dropped,
            p.sent,
            p.flooded,
            p.dropped_spoofed,
            p.dropped_length,
            p.dropped_budget
        ));
    }
    if let Some((c, device_us)) = vm.disk_statistics() {
        logger::print_raw(format_args!(
            "[hv] disk vm{}: reads={} writes={} flushes={} read-kib={} written-kib={} refused={} disk-errors={} accesses={} interrupts={} device-us={device_us}\n",
            vm.vmid,
            c.reads,
            c.writes,
            c.flushes,
            c.bytes_read >> 10,
            c.bytes_written >> 10,
            c.refused,
            c.disk_errors,
            c.accesses,
            c.interrupts
        ));
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let cpu = cpu::current_index();
    match info.location() {
        Some(loc) => logger::print_panic(format_args!(
            "\n[hv cpu{cpu}] PANIC at {}:{}: {}\n",
            loc.file(),
            loc.line(),
            info.message()
        )),
        None => logger::print_panic(format_args!("\n[hv cpu{cpu}] PANIC: {}\n", info.message())),
    }
    cpu::halt()
}
