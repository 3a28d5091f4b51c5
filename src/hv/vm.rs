//! A virtual machine: its memory, stage-2 tables, virtual GIC, vCPU power
//! states and emulated devices, created once from the command line and the
//! host device tree.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::AtomicBool;

use super::lock::Mutex;
use hv_arch::read_sysreg;
use hvcore::boot_image::{parse_image_header, plan_layout};
use hvcore::frame_alloc::FrameScrubber;
use hvcore::frame_alloc::FRAME_SIZE;
use hvcore::guest_config::{build_guest_dtb, guest_seeds, Device, GuestDtbSpec, HostInfo, HvArgs};
use hvcore::lazy_zero::{Chunk, LazilyZeroed};
use hvcore::log_limit::LogLimiter;
use hvcore::mmio::SCRATCH_SIZE;
use hvcore::pl011::{Pl011, PL011_SIZE};
use hvcore::psci::{PowerState, VcpuPower};
use hvcore::stage2::{MemAttr, Perms, Stage2, Stage2Error};
use hvcore::vgic::Vgic;
use hvcore::virtqueue::GuestMemory;
use hvcore::vm_spec::{nth_set_bit, Module, VmSpec};
use log::info;

use super::devices::{self, Bus};
use super::memory::{copy_to_guest, frames, FrameTableMemory, HostScrubber};
use super::phys_blk::PhysBlk;

/// Guest-physical layout, the same as QEMU virt's so guests need no surprises.
pub const GICD_IPA: u64 = 0x0800_0000;
pub const GICD_SIZE: u64 = 0x1_0000;
pub const GICR_IPA: u64 = 0x080A_0000;
pub const GICR_FRAME_SIZE: u64 = 0x2_0000;
pub const SCRATCH_IPA: u64 = 0x0B00_0000;
/// The test VM's virtio-mmio device (QEMU virt's first virtio-mmio slot).
pub const VIRTIO_IPA: u64 = 0x0A00_0000;
pub const VIRTIO_SIZE: u64 = 0x200;
/// Its interrupt: SPI 16, as QEMU virt wires its first virtio-mmio slot.
pub const VIRTIO_INTID: u32 = 48;
/// A VM's disk: the second virtio-mmio slot, and its interrupt (SPI 17).
pub const BLK_IPA: u64 = VIRTIO_IPA + VIRTIO_SIZE;
pub const BLK_INTID: u32 = 49;
/// A VM's network card: the third virtio-mmio slot, SPI 18.
pub const NET_IPA: u64 = BLK_IPA + VIRTIO_SIZE;
pub const NET_INTID: u32 = 50;
pub const RAM_IPA: u64 = 0x4000_0000;

/// Interrupts the hypervisor forwards with the list-register HW bit.
pub const VTIMER_INTID: u32 = 27;
/// The guest's EL1 physical timer interrupt (emulated, software level).
pub const PTIMER_INTID: u32 = 30;

const IPA_BITS: u32 = 40;
const DTB_MAX_SIZE: u64 = 64 * 1024;
const TWO_MIB: u64 = 2 << 20;
/// Guest RAM is zeroed and mapped this much at a time, at first touch.
const RAM_CHUNK: u64 = TWO_MIB;

/// One virtual machine.
pub struct Vm {
    pub vmid: u16,
    /// The configured name (`vm1` when the command line describes the VM).
    pub name: String,
    pub num_vcpus: usize,
    /// The physical CPUs the VM owns (bit n: CPU n); vCPU i runs on the
    /// i-th of them.
    pub cpus: u64,
    /// `cpus` as a table, vCPU index to physical CPU (exit paths look it up).
    cpu_table: [u8; hvcore::psci::MAX_VCPUS],
    pub vttbr: u64,
    pub vtcr: u64,
    pub cntvoff: u64,
    pub entry_ipa: u64,
    pub dtb_ipa: u64,
    /// On the heap: with its 352 interrupts it is too big to be moved
    /// around the 64 KiB EL2 boot stack inside `Vm` (that overflowed).
    pub vgic: Mutex<Box<Vgic>>,
    pub power: Mutex<VcpuPower>,
    /// The emulated MMIO devices by guest-physical range (see `devices`).
    pub bus: Box<Bus>,
    /// A test VM (`hv.testdev=on`): the scratch and null virtio devices,
    /// the test hypercalls.
    pub test_device: bool,
    /// The VM's virtio-blk disk (also on the bus), for its statistics.
    blk: Option<&'static devices::blk::VirtioBlk>,
    /// The VM's virtio-net card (also on the bus), for the switch.
    net: Option<&'static devices::net::VirtioNet>,
    pub ram: VmRam,
    /// Which chunks of the RAM are zeroed (and mapped at stage 2): the rest
    /// is zeroed when the guest or a device first touches it.
    ram_zeroing: Mutex<LazilyZeroed>,
    /// Physical SPIs assigned to this VM (forwarded with the HW bit).
    pub assigned_spis: Vec<u32>,
    /// The emulated PL011 (on the bus at the host UART's address), its
    /// interrupt `uart_intid` (a software level in the vGIC), fed from the
    /// physical UART's receive interrupt `host_uart_irq`.
    pub uart: Option<Mutex<Pl011>>,
    pub uart_intid: Option<u32>,
    pub host_uart_irq: Option<u32>,
    /// Budget of guest-triggered log lines (see `guest_log`).
    pub log_limit: Mutex<LogLimiter>,
    /// Powered off (PSCI SYSTEM_OFF): its vCPUs park at their next exit.
    pub stopped: AtomicBool,
    /// To be started again once every vCPU has parked (a reboot).
    pub restart_requested: AtomicBool,
    /// What a (re)start loads into RAM.
    boot: BootImages,
    /// The stage-2 tables VTTBR_EL2 points at: owned here so they live as
    /// long as the VM (ballooning and sharing will change them at run time).
    stage2_tables: Mutex<Stage2<FrameTableMemory>>,
}

impl Vm {
    /// Build VM `vmid` from its validated specification (images in host
    /// RAM, vCPUs, CPUs, memory), the host description and the command
    /// line's hypervisor options.
    pub fn create(
        vmid: u16,
        host: &HostInfo,
        args: &HvArgs,
        vm_spec: &VmSpec,
        cntvoff: u64,
        in_place_clear_of: Option<&[(u64, u64)]>,
        disk: Option<PhysBlk>,
    ) -> Result<Vm, String> {
        let num_vcpus = vm_spec.vcpus;
        let ram_size = vm_spec.mem_bytes;
        let ram_frames = (ram_size / FRAME_SIZE) as usize;

        // SAFETY: the kernel blob is host RAM reserved at boot.
        let header_bytes =
            unsafe { core::slice::from_raw_parts(vm_spec.kernel.addr as *const u8, 64) };
        let header =
            parse_image_header(header_bytes).map_err(|e| alloc::format!("guest kernel: {e:?}"))?;
        let initrd_size = vm_spec.initrd.map_or(0, |m| m.size);
        let layout = plan_layout(
            RAM_IPA,
            ram_size,
            &header,
            vm_spec.kernel.size,
            initrd_size,
            DTB_MAX_SIZE,
        )
        .map_err(|e| alloc::format!("guest layout: {e:?}"))?;

        // The frames may hold a previous owner's data (another VM's, the
        // hypervisor's, whatever was in RAM at boot): each chunk is zeroed
        // before it is mapped, at the guest's first touch (a stage-2 fault,
        // `zero_on_first_touch`) or before the hypervisor writes into it.
        // Zeroing all 256 MiB up front cost 48 ms of instructions before the
        // guest's first one, and made QEMU back every host page.
        // A lone VM's RAM starts where its kernel already lies, if it can
        // (see `claim_ram_around_kernel`); otherwise the kernel is copied.
        let in_place = in_place_clear_of.and_then(|others| {
            claim_ram_around_kernel(vm_spec, layout.kernel_ipa, ram_frames, others)
        });
        let kernel_in_place = in_place.is_some();
        if kernel_in_place {
            info!(
                "vm{vmid}: kernel run in place at PA {:#x} (not copied)",
                vm_spec.kernel.addr
            );
        }
        let unscrubbed = match in_place {
            Some(frames) => frames,
            None => {
                if vm_spec.test_device {
                    leave_previous_owner_data(ram_frames, None);
                }
                frames()
                    .lock()
                    .alloc_for_owner(ram_frames, TWO_MIB)
                    .ok_or_else(|| {
                        alloc::format!("no {} MiB of contiguous RAM for the guest", ram_size >> 20)
                    })?
            }
        };
        let mut ram_zeroing =
            LazilyZeroed::new(unscrubbed, RAM_CHUNK).expect("the chunk size is a power of two");
        let ram_pa = ram_zeroing.bounds().0;
        info!(
            "vm{vmid}: {} MiB of RAM zeroed in {} KiB chunks at first touch",
            ram_size >> 20,
            RAM_CHUNK >> 10
        );

        let mut stage2 = Stage2::new(FrameTableMemory, IPA_BITS, IPA_BITS)
            .map_err(|e| alloc::format!("stage-2: {e:?}"))?;
        // Pages unless asked for blocks: see HvArgs::stage2_blocks.
        stage2.set_block_mappings(args.stage2_blocks);
        stage2
            .allow(ram_pa, ram_size)
            .map_err(|e| alloc::format!("{e:?}"))?;

        // Devices assigned directly (MMIO mapped at stage 2, interrupt
        // forwarded) would go here. The PL011 is not one: the hypervisor
        // keeps it and the guest gets an emulated one at the same address
        // and interrupt, so the guest cannot stop or forge the log.
        let assigned_spis = Vec::new();
        let uart = host.uart.clone().filter(|_| vm_spec.console);

        let mut extra_mmio = Vec::new();
        let mut virtio = Vec::new();
        if vm_spec.test_device {
            virtio.push(Device {
                name: String::from("virtio_mmio"),
                base: VIRTIO_IPA,
                size: VIRTIO_SIZE,
                irq: Some(VIRTIO_INTID),
                compatible: String::from("virtio,mmio"),
            });
            extra_mmio.push(Device {
                name: String::from("scratch"),
                base: SCRATCH_IPA,
                size: SCRATCH_SIZE,
                irq: None,
                compatible: String::from("hvrust,scratch"),
            });
        }

        if vm_spec.nic.is_some() {
            virtio.push(Device {
                name: String::from("virtio_mmio"),
                base: NET_IPA,
                size: VIRTIO_SIZE,
                irq: Some(NET_INTID),
                compatible: String::from("virtio,mmio"),
            });
        }
        if disk.is_some() {
            virtio.push(Device {
                name: String::from("virtio_mmio"),
                base: BLK_IPA,
                size: VIRTIO_SIZE,
                irq: Some(BLK_INTID),
                compatible: String::from("virtio,mmio"),
            });
        }

        let initrd_range = vm_spec
            .initrd
            .zip(layout.initrd_ipa)
            .map(|(initrd, ipa)| (ipa, ipa + initrd.size));
        let spec = GuestDtbSpec {
            ram_base: RAM_IPA,
            ram_size,
            num_vcpus,
            cpu_compatible: host.cpu_compatible.clone(),
            gic_dist: (GICD_IPA, GICD_SIZE),
            gic_redist_base: GICR_IPA,
            uart: uart.clone(),
            virtio,
            extra_mmio,
            bootargs: vm_spec.bootargs.clone(),
            initrd: initrd_range,
            seeds: host
                .rng_seed
                .map(|seed| guest_seeds(&seed, vmid, read_sysreg!("CNTPCT_EL0"))),
        };
        let dtb = build_guest_dtb(&spec).map_err(|e| alloc::format!("guest device tree: {e:?}"))?;
        if dtb.len() as u64 > DTB_MAX_SIZE {
            return Err(String::from("guest device tree too large"));
        }
        let boot = BootImages {
            kernel: vm_spec.kernel,
            kernel_ipa: layout.kernel_ipa,
            kernel_in_place,
            initrd: vm_spec.initrd.zip(layout.initrd_ipa),
            dtb,
            dtb_ipa: layout.dtb_ipa,
        };
        // Copied into chunks zeroed only around the copy (the kernel is 27 MB),
        // or only zeroed around the kernel where it lies in place.
        boot.load_into(&mut ram_zeroing, &mut stage2)?;
        let vgic = fresh_vgic(num_vcpus, &assigned_spis);
        let mut bus = device_bus(num_vcpus, uart.as_ref(), vm_spec.test_device)
            .map_err(|e| alloc::format!("devices: {e}"))?;
        let blk = match disk {
            Some(disk) => {
                let blk: &'static devices::blk::VirtioBlk = alloc::boxed::Box::leak(Box::new(
                    devices::blk::VirtioBlk::new(disk, &vm_spec.name, BLK_INTID),
                ));
                bus.register(BLK_IPA, VIRTIO_SIZE, blk)
                    .map_err(|e| alloc::format!("disk: {e}"))?;
                Some(blk)
            }
            None => None,
        };
        let net = match &vm_spec.nic {
            Some(nic) => {
                let net: &'static devices::net::VirtioNet = alloc::boxed::Box::leak(Box::new(
                    devices::net::VirtioNet::new(&nic.network, nic.mac, NET_INTID),
                ));
                bus.register(NET_IPA, VIRTIO_SIZE, net)
                    .map_err(|e| alloc::format!("network: {e}"))?;
                Some(net)
            }
            None => None,
        };

        info!(
            "vm{vmid} '{}': {num_vcpus} vCPU(s) on CPUs {:#x}, {} MiB RAM at PA {ram_pa:#x}, kernel at IPA {:#x}, dtb at {:#x}, initrd {:?}",
            vm_spec.name,
            vm_spec.cpus,
            ram_size >> 20,
            layout.kernel_ipa,
            layout.dtb_ipa,
            initrd_range
        );
        Ok(Vm {
            vmid,
            name: vm_spec.name.clone(),
            num_vcpus,
            cpus: vm_spec.cpus,
            cpu_table: core::array::from_fn(|i| nth_set_bit(vm_spec.cpus, i).unwrap_or(0) as u8),
            vttbr: stage2.root_pa() | (u64::from(vmid) << 48),
            vtcr: stage2.vtcr(),
            cntvoff,
            entry_ipa: layout.kernel_ipa,
            dtb_ipa: layout.dtb_ipa,
            vgic: Mutex::new(vgic),
            power: Mutex::new(VcpuPower::new(num_vcpus)),
            bus: Box::new(bus),
            test_device: vm_spec.test_device,
            blk,
            net,
            ram: VmRam {
                ipa: RAM_IPA,
                size: ram_size,
            },
            ram_zeroing: Mutex::new(ram_zeroing),
            assigned_spis,
            uart: uart.as_ref().map(|_| Mutex::new(Pl011::new())),
            uart_intid: uart.as_ref().and_then(|u| u.irq),
            host_uart_irq: uart.as_ref().and_then(|u| u.irq),
            log_limit: Mutex::new(super::guest_log::new_limiter()),
            stopped: AtomicBool::new(false),
            restart_requested: AtomicBool::new(false),
            boot,
            stage2_tables: Mutex::new(stage2),
        })
    }

    /// Put the VM back in its state at creation, for a restart: RAM zeroed
    /// and loaded again from its images, a fresh vGIC, power states and
    /// devices. Only while every vCPU is parked (the caller checks).
    pub fn reset(&self) {
        {
            // Chunks the guest touched are zeroed again; the others are
            // still unmapped and get zeroed at their first touch.
            let mut ram = self.ram_zeroing.lock();
            let chunk = ram.chunk_size();
            for offset in (0..ram.chunks() as u64).map(|i| i * chunk) {
                // The last chunk is shorter when the RAM is not a whole
                // number of chunks; an address means the chunk is zeroed.
                let len = chunk.min(ram.size() - offset);
                if let Some(pa) = ram.host_address(offset, len) {
                    HostScrubber.zero(pa, len);
                }
            }
            let mut stage2 = self.stage2_tables.lock();
            if let Err(e) = self.boot.load_into(&mut ram, &mut stage2) {
                log::error!("VM '{}': {e}", self.name);
            }
        }
        *self.vgic.lock() = fresh_vgic(self.num_vcpus, &self.assigned_spis);
        *self.power.lock() = VcpuPower::new(self.num_vcpus);
        if let Some(uart) = &self.uart {
            *uart.lock() = Pl011::new();
        }
        for (_, device) in self.bus.devices() {
            device.reset(self);
        }
    }

    /// Whether the VM's kernel ran where the loader put it: its images are
    /// gone, so only a machine reset (which reloads them) restarts it.
    pub fn kernel_in_place(&self) -> bool {
        self.boot.kernel_in_place
    }

    /// Whether every vCPU is off (parked), so the VM can be reset.
    pub fn all_vcpus_off(&self) -> bool {
        let power = self.power.lock();
        (0..self.num_vcpus).all(|i| power.state(i) == PowerState::Off)
    }

    /// Physical CPU that runs vCPU `index`.
    #[inline]
    pub fn cpu_of(&self, index: usize) -> usize {
        usize::from(self.cpu_table[index % hvcore::psci::MAX_VCPUS])
    }

    /// The vCPU that runs on physical CPU `cpu`, if this VM owns it.
    pub fn vcpu_on(&self, cpu: usize) -> Option<usize> {
        if cpu >= 64 || self.cpus & (1 << cpu) == 0 {
            return None;
        }
        let index = (self.cpus & ((1u64 << cpu) - 1)).count_ones() as usize;
        (index < self.num_vcpus).then_some(index)
    }

    /// A stage-2 translation fault at `ipa`: if it is guest RAM, zero and
    /// map its chunk unless that is done, and say whether the access can
    /// be retried (the chunk is mapped now, by this call or by another vCPU
    /// that got there first).
    pub fn zero_on_first_touch(&self, ipa: u64) -> bool {
        if ipa.wrapping_sub(RAM_IPA) >= self.ram.size {
            return false;
        }
        let mut ram = self.ram_zeroing.lock();
        let mut stage2 = self.stage2_tables.lock();
        zero_and_map(&mut ram, &mut stage2, ipa, 1).is_some() && stage2.translate(ipa).is_some()
    }

    /// Chunks of guest RAM zeroed so far, of how many, and their size.
    pub fn ram_zeroing_statistics(&self) -> (usize, usize, u64) {
        let ram = self.ram_zeroing.lock();
        (ram.zeroed_chunks(), ram.chunks(), ram.chunk_size())
    }

    /// Whether stage 2 maps `ipa` (a fault there is a permission fault, not a hole).
    pub fn is_mapped(&self, ipa: u64) -> bool {
        self.stage2_tables.lock().translate(ipa).is_some()
    }

    /// Follow the guest enabling or disabling an interrupt that is backed
    /// by a physical one: the physical SPI is enabled only while the guest
    /// wants it (private interrupts stay enabled on their own CPU).
    pub fn apply_hw_enable_changes(&self) {
        let changes = {
            let mut vgic = self.vgic.lock();
            if !vgic.has_hw_enable_changes() {
                return;
            }
            vgic.take_hw_enable_changes()
        };
        for (pintid, enabled, target) in changes.into_iter().flatten() {
            if pintid >= 32 && self.assigned_spis.contains(&pintid) {
                if enabled {
                    // Physical CPU indices are Aff0 on QEMU virt.
                    hv_arch::gic::enable_spi(pintid, self.cpu_of(target) as u64);
                } else {
                    hv_arch::gic::disable_spi(pintid);
                }
            }
        }
    }

    /// Make the physical twins of HW-backed interrupts active or inactive as
    /// the vGIC decided (a guest wrote I{S,C}ACTIVER / I{S,C}PENDR, or a
    /// forwarded line dropped before the guest took the interrupt).
    pub fn apply_hw_active_changes(&self) {
        loop {
            let changes = {
                let mut vgic = self.vgic.lock();
                if !vgic.has_hw_active_changes() {
                    return;
                }
                vgic.take_hw_active_changes()
            };
            for change in changes.into_iter().flatten() {
                hv_arch::gic::set_active(change.pintid, self.cpu_of(change.vcpu), change.active);
            }
        }
    }

    /// The physical interrupt of the device storing the VM's disk, when
    /// its requests complete on it.
    pub fn disk_irq(&self) -> Option<u32> {
        self.blk?.physical_irq()
    }

    /// The physical device storing the VM's disk interrupted: see
    /// [`devices::blk::VirtioBlk::physical_interrupt`].
    pub fn disk_interrupt(&self, loaded: (*const Vm, usize)) {
        if let Some(blk) = self.blk {
            blk.physical_interrupt(self, loaded);
        }
    }

    /// The network name and MAC address of the VM's card.
    pub fn nic_config(&self) -> Option<(&str, [u8; 6])> {
        self.net.map(|net| (net.network.as_str(), net.mac))
    }

    /// A frame from the switch for this VM (dropped while it is stopped).
    pub fn net_receive(&self, frame: &[u8]) {
        if let Some(net) = self.net {
            if !self.stopped.load(core::sync::atomic::Ordering::Acquire) {
                net.receive(self, frame);
            }
        }
    }

    /// What the VM's card did so far.
    pub fn net_statistics(&self) -> Option<hvcore::net_device::NetCounters> {
        self.net.map(|net| net.statistics())
    }

    /// What the VM's disk did so far (`None`: it has none), and the
    /// physical device's mean time per request in microseconds (from
    /// being given it to its answer being seen).
    pub fn disk_statistics(&self) -> Option<(hvcore::blk_device::BlkCounters, u64)> {
        self.blk.map(|blk| blk.statistics())
    }
}

/// The RAM of a lone VM, claimed so that it starts where QEMU's loader put
/// the kernel blob, minus the kernel's offset in guest RAM: the kernel is
/// then already in place and is not copied. Copying 27 MB under QEMU's TCG
/// cost about as many host instructions as a third of the boot's whole
/// difference to bare QEMU, and made QEMU back 28 MiB more host pages.
/// `None` (the blob stays reserved, the caller copies) when the RAM there
/// is not free, not 2 MiB aligned, or would meet a frame of `others` (the
/// other reserved ranges: the blob's frames are freed for a moment, and one
/// may share its last frame) or of the initramfs.
fn claim_ram_around_kernel(
    vm_spec: &VmSpec,
    kernel_ipa: u64,
    ram_frames: usize,
    others: &[(u64, u64)],
) -> Option<hvcore::frame_alloc::UnscrubbedFrames> {
    let kernel = vm_spec.kernel;
    let ram_pa = kernel.addr.checked_sub(kernel_ipa.checked_sub(RAM_IPA)?)?;
    if !ram_pa.is_multiple_of(TWO_MIB) || !kernel.addr.is_multiple_of(FRAME_SIZE) {
        return None;
    }
    let ram_end = ram_pa.checked_add(ram_frames as u64 * FRAME_SIZE)?;
    let initrd = vm_spec.initrd.map(|m| (m.addr, m.size));
    let meets_ram = |&(addr, size): &(u64, u64)| {
        let first = addr & !(FRAME_SIZE - 1);
        let end = addr.saturating_add(size).next_multiple_of(FRAME_SIZE);
        first < ram_end && end > ram_pa
    };
    if others.iter().chain(initrd.iter()).any(meets_ram) {
        return None;
    }
    let blob_frames = kernel.size.div_ceil(FRAME_SIZE) as usize;
    let lead_frames = ((kernel.addr - ram_pa) / FRAME_SIZE) as usize;
    let rest_pa = kernel.addr + blob_frames as u64 * FRAME_SIZE;
    let rest_frames = ram_frames.checked_sub(lead_frames + blob_frames)?;
    if vm_spec.test_device {
        // The frames it gets besides the blob, as for a copied kernel.
        let runs = [(ram_pa, lead_frames), (rest_pa, rest_frames)];
        leave_previous_owner_data(ram_frames, Some(&runs));
    }
    let mut allocator = frames().lock();
    // The blob's frames are reserved; they become part of the RAM.
    allocator.free_contiguous(kernel.addr, blob_frames).ok()?;
    let claimed = allocator.alloc_for_owner_at(ram_pa, ram_frames);
    if claimed.is_none() {
        allocator
            .reserve(kernel.addr, kernel.size)
            .expect("the blob was reserved a moment ago");
    }
    claimed
}

/// Test VMs only (`hv.testdev=on`): play a previous owner of the frames the
/// VM is about to get, leaving a byte pattern in one cache line of every
/// page and freeing them again, so a test can see whether the new owner is
/// handed that data. Without `at` the allocator's first fit, which the VM
/// then gets; with `at`, the runs `(pa, frames)` the VM will claim there
/// (its RAM around a kernel run in place).
fn leave_previous_owner_data(frames_wanted: usize, at: Option<&[(u64, usize)]>) {
    let mut allocator = frames().lock();
    let first_fit;
    let runs = match at {
        Some(runs) => runs,
        None => {
            let Some(pa) = allocator.alloc_contiguous(frames_wanted, TWO_MIB) else {
                return;
            };
            let _ = allocator.free_contiguous(pa, frames_wanted);
            first_fit = [(pa, frames_wanted)];
            &first_fit[..]
        }
    };
    let mut left = 0;
    for &(pa, count) in runs {
        if count == 0 || allocator.alloc_at(pa, count).is_none() {
            continue;
        }
        for page in 0..count as u64 {
            // A different line of each page, so every line offset is covered.
            let line = pa + page * FRAME_SIZE + (page * 64) % FRAME_SIZE;
            // SAFETY: frames just allocated to this function, identity-mapped at EL2.
            unsafe { core::ptr::write_bytes(line as *mut u8, 0xa5, 64) };
        }
        hv_arch::cache::clean_dcache_range(pa as usize, count * FRAME_SIZE as usize);
        let _ = allocator.free_contiguous(pa, count);
        left += count;
    }
    info!(
        "testdev: left a pattern in {} KiB of free RAM at PA {:#x}",
        (left as u64 * FRAME_SIZE) >> 10,
        runs.first().map_or(0, |r| r.0)
    );
}

impl Vm {
    /// Drive the emulated UART's interrupt line.
    pub fn set_uart_level(&self, vcpu: usize, level: bool) {
        if let Some(intid) = self.uart_intid {
            self.set_device_level(intid, vcpu, level);
        }
    }

    /// Drive the interrupt line `intid` of an emulated device (as seen from
    /// `vcpu`) and kick the vCPU that should now take it: even this one, as
    /// its list registers are refreshed on the interrupt exit that follows.
    pub fn set_device_level(&self, intid: u32, vcpu: usize, level: bool) {
        if let Some(target) = self.vgic.lock().set_level(intid, vcpu, level) {
            hv_arch::gic::send_sgi(self.cpu_of(target), super::KICK_SGI);
        }
    }
}

/// The images a VM boots from: where they wait in host RAM and where they
/// go in guest RAM. Kept for restarts.
struct BootImages {
    kernel: Module,
    kernel_ipa: u64,
    /// The kernel blob is the guest's RAM at `kernel_ipa` (not copied; the
    /// guest overwrites it, so the VM cannot be restarted from it).
    kernel_in_place: bool,
    initrd: Option<(Module, u64)>,
    dtb: Vec<u8>,
    dtb_ipa: u64,
}

impl BootImages {
    /// Copy the images into guest RAM, zeroing and mapping the chunks they
    /// land in if that is not done yet.
    fn load_into(
        &self,
        ram: &mut LazilyZeroed,
        stage2: &mut Stage2<FrameTableMemory>,
    ) -> Result<(), String> {
        if self.kernel_in_place {
            map_in_place(ram, stage2, self.kernel_ipa, self.kernel)
                .ok_or_else(|| alloc::format!("mapping the kernel at {:#x}", self.kernel_ipa))?;
        }
        let mut copy_in = |ipa: u64, src_pa: u64, len: u64| {
            copy_and_map(ram, stage2, ipa, src_pa, len)
                .ok_or_else(|| alloc::format!("mapping guest RAM at {ipa:#x}"))
        };
        if !self.kernel_in_place {
            copy_in(self.kernel_ipa, self.kernel.addr, self.kernel.size)?;
        }
        if let Some((initrd, ipa)) = self.initrd {
            copy_in(ipa, initrd.addr, initrd.size)?;
        }
        copy_in(
            self.dtb_ipa,
            self.dtb.as_ptr() as u64,
            self.dtb.len() as u64,
        )
    }
}

/// The VM's emulated devices on its bus: the vGIC's distributor and
/// redistributors, the emulated PL011 where the host's is, and on test VMs
/// the null virtio-mmio transport and the scratch device.
fn device_bus(
    num_vcpus: usize,
    uart: Option<&Device>,
    test_device: bool,
) -> Result<Bus, hvcore::mmio_bus::BusError> {
    let mut bus = Bus::new();
    bus.register(GICD_IPA, GICD_SIZE, &devices::gic::DISTRIBUTOR)?;
    let redist_size = GICR_FRAME_SIZE * num_vcpus as u64;
    bus.register(GICR_IPA, redist_size, &devices::gic::REDISTRIBUTORS)?;
    if let Some(uart) = uart {
        bus.register(uart.base, PL011_SIZE, &devices::pl011::EMULATED_PL011)?;
    }
    if test_device {
        let virtio = devices::virtio::NullVirtio::new(VIRTIO_INTID);
        bus.register(VIRTIO_IPA, VIRTIO_SIZE, devices::leak(virtio))?;
        let scratch = devices::scratch::Scratch::new();
        bus.register(SCRATCH_IPA, SCRATCH_SIZE, devices::leak(scratch))?;
    }
    Ok(bus)
}

/// A vGIC at reset, with the virtual timer and assigned SPIs forwarded.
fn fresh_vgic(num_vcpus: usize, assigned_spis: &[u32]) -> Box<Vgic> {
    let mut vgic: Box<Vgic> = Box::new(Vgic::new(num_vcpus));
    for vcpu in 0..num_vcpus {
        vgic.set_hw(VTIMER_INTID, vcpu, Some(VTIMER_INTID));
    }
    for &spi in assigned_spis {
        vgic.set_hw(spi, 0, Some(spi));
    }
    vgic
}

/// A VM's RAM as devices see it: guest-physical addresses, checked against
/// the VM's range (its host frames are reached through [`DeviceRamAccess`]).
#[derive(Debug, Clone, Copy)]
pub struct VmRam {
    pub ipa: u64,
    pub size: u64,
}

/// Zero and map at stage 2 the chunks of guest RAM that `[ipa, ipa + len)`
/// meets and that are not yet, and return the host address of `ipa`; `None`
/// when the range leaves the RAM or a chunk could not be mapped.
fn zero_and_map(
    ram: &mut LazilyZeroed,
    stage2: &mut Stage2<FrameTableMemory>,
    ipa: u64,
    len: u64,
) -> Option<u64> {
    let mut mapped = Ok(());
    let pa = ram.zero_range(ipa.checked_sub(RAM_IPA)?, len, &mut HostScrubber, |chunk| {
        if mapped.is_ok() {
            mapped = map_ram_chunk(stage2, chunk);
        }
    })?;
    mapped.ok().map(|()| pa)
}

/// Map a chunk of guest RAM that was just zeroed at its place in the VM's
/// RAM window (read, write, execute; normal memory).
fn map_ram_chunk(stage2: &mut Stage2<FrameTableMemory>, chunk: Chunk) -> Result<(), Stage2Error> {
    stage2.map(
        RAM_IPA + chunk.offset,
        chunk.pa,
        chunk.len,
        Perms::RWX,
        MemAttr::Normal,
    )
}

/// Copy `len` bytes from host `src_pa` into guest RAM at `ipa` (cleaned to
/// the point of coherency), zeroing and mapping the chunks the copy meets
/// that are not yet: only their parts outside the copy are zeroed.
fn copy_and_map(
    ram: &mut LazilyZeroed,
    stage2: &mut Stage2<FrameTableMemory>,
    ipa: u64,
    src_pa: u64,
    len: u64,
) -> Option<()> {
    let mut mapped = Ok(());
    ram.zero_range_around(
        ipa.checked_sub(RAM_IPA)?,
        len,
        &mut HostScrubber,
        |_, dst_pa| copy_to_guest(dst_pa, src_pa, len),
        |chunk| {
            if mapped.is_ok() {
                mapped = map_ram_chunk(stage2, chunk);
            }
        },
    )?;
    mapped.ok()
}

/// Zero and map the chunks of guest RAM that hold `blob` at `ipa`, where it
/// already lies (a kernel run in place): only their parts outside the blob
/// are zeroed.
fn map_in_place(
    ram: &mut LazilyZeroed,
    stage2: &mut Stage2<FrameTableMemory>,
    ipa: u64,
    blob: Module,
) -> Option<()> {
    let mut mapped = Ok(());
    ram.zero_range_around(
        ipa.checked_sub(RAM_IPA)?,
        blob.size,
        &mut HostScrubber,
        // Written already, by the loader; the hypervisor never wrote these
        // lines, so none is dirty in its caches for a guest with caches off.
        |_, pa| debug_assert_eq!(pa, blob.addr),
        |chunk| {
            if mapped.is_ok() {
                mapped = map_ram_chunk(stage2, chunk);
            }
        },
    )?;
    mapped.ok()
}

/// Guest RAM as an emulated device reads and writes it: the chunks an
/// access meets are zeroed first, as if the guest had touched them.
pub struct DeviceRamAccess<'a>(&'a Vm);

impl<'a> DeviceRamAccess<'a> {
    pub fn new(vm: &'a Vm) -> Self {
        DeviceRamAccess(vm)
    }

    fn host_address(&self, ipa: u64, len: usize) -> Option<*mut u8> {
        if !self.0.ram.contains(ipa, len as u64) {
            return None;
        }
        if len == 0 {
            return Some(core::ptr::NonNull::dangling().as_ptr());
        }
        let mut ram = self.0.ram_zeroing.lock();
        let mut stage2 = self.0.stage2_tables.lock();
        zero_and_map(&mut ram, &mut stage2, ipa, len as u64).map(|pa| pa as *mut u8)
    }
}

impl VmRam {
    /// Whether `[addr, addr + len)` lies in the RAM.
    pub fn contains(&self, addr: u64, len: u64) -> bool {
        addr >= self.ipa
            && addr
                .checked_add(len)
                .is_some_and(|end| end <= self.ipa + self.size)
    }
}

impl GuestMemory for DeviceRamAccess<'_> {
    fn contains(&self, addr: u64, len: u64) -> bool {
        self.0.ram.contains(addr, len)
    }

    fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        let Some(src) = self.host_address(addr, buf.len()) else {
            return false;
        };
        // SAFETY: inside this VM's RAM (checked), identity-mapped at EL2.
        unsafe { core::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), buf.len()) };
        true
    }

    fn write(&mut self, addr: u64, data: &[u8]) -> bool {
        let Some(dst) = self.host_address(addr, data.len()) else {
            return false;
        };
        // SAFETY: as read.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) };
        true
    }

    /// The page is zeroed and mapped first, so the guest's first touch
    /// cannot zero what a device wrote there.
    fn dma_address(&mut self, addr: u64) -> Option<u64> {
        let in_page = FRAME_SIZE - addr % FRAME_SIZE;
        self.host_address(addr, in_page as usize)
            .map(|pa| pa as u64)
    }
}
