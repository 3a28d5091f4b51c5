use guest_rt::smccc::{self, hvc};
use guest_rt::{counter, mmio_read, mmio_write, mrs, msr, println, virtio};

const SCRATCH_REG: usize = 0x0B00_0000 + 8;
const GICD: usize = 0x0800_0000;
const GICR: usize = 0x080A_0000;
const GICR_STRIDE: usize = 0x2_0000;
const SGI_OFFSET: usize = 0x1_0000;

/// Operations per sample and samples per figure: a sample is long enough to
/// span many counter ticks; the figure is the median sample.
const OPS_PER_SAMPLE: u64 = 64;
const SAMPLES: usize = 31;

fn median(samples: &mut [u64]) -> u64 {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

fn ticks_to_ns(ticks: u64) -> u64 {
    let freq = mrs!("CNTFRQ_EL0").max(1);
    ticks * 1_000_000_000 / freq
}

/// Median nanoseconds per call of `op`, in hundredths (two decimals without floats).
fn measure(mut op: impl FnMut()) -> u64 {
    let mut samples = [0u64; SAMPLES];
    for s in samples.iter_mut() {
        let start = counter();
        for _ in 0..OPS_PER_SAMPLE {
            op();
        }
        *s = counter() - start;
    }
    ticks_to_ns(median(&mut samples) * 100) / OPS_PER_SAMPLE
}

fn report(name: &str, centi_ns: u64) {
    println!("BENCH {name} {}.{:02} ns", centi_ns / 100, centi_ns % 100);
}

/// A loop of plain arithmetic that never exits: the same cost with or without a hypervisor.
fn compute_loop() -> u64 {
    let mut x: u64 = 1;
    for i in 0..200_000u64 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
        // SAFETY: compiler barrier so the loop is not folded away.
        unsafe { core::arch::asm!("", inout("x0") x => x, options(nomem, nostack)) };
    }
    x
}

static mut RINGS: virtio::Rings = virtio::Rings([0; 0x3000]);

/// Bring up queue 0 of the virtio-mmio device, if there is one.
fn virtio_setup() -> bool {
    mmio_read::<u32>(virtio::BASE) == 0x7472_6976
        && virtio::setup_queue(core::ptr::addr_of!(RINGS) as u64, 8)
}

static mut SECONDARY_SEEN_AT: u64 = 0;
static mut SECONDARY_READY: u64 = 0;

fn vol_read(p: *const u64) -> u64 {
    // SAFETY: shared word between two vCPUs; the MMU is off, so every access goes to memory.
    unsafe { core::ptr::read_volatile(p) }
}
/// Spin-wait hint: under QEMU's single-threaded -icount scheduling a
/// busy-waiting vCPU must yield, or the vCPU it waits for never runs.
fn relax() {
    // SAFETY: a hint instruction.
    unsafe { core::arch::asm!("yield", options(nomem, nostack)) };
}

fn vol_write(p: *mut u64, v: u64) {
    // SAFETY: as vol_read.
    unsafe { core::ptr::write_volatile(p, v) }
}

fn gic_cpu_interface_on() {
    msr!("S3_0_C12_C12_5", 0xf); // ICC_SRE_EL1
    msr!("S3_0_C4_C6_0", 0xff); // ICC_PMR_EL1
    msr!("S3_0_C12_C12_7", 1); // ICC_IGRPEN1_EL1
}

fn wait_for_interrupt(intid: u64) -> u64 {
    loop {
        let got = mrs!("S3_0_C12_C12_0") & 0xff_ffff; // ICC_IAR1_EL1
        if got == intid {
            let at = counter();
            msr!("S3_0_C12_C12_1", got); // ICC_EOIR1_EL1
            return at;
        }
        if got != 1023 {
            msr!("S3_0_C12_C12_1", got);
        }
        relax();
    }
}

/// vCPU 1: answer each SGI 1 by recording when it arrived.
#[no_mangle]
extern "C" fn guest_secondary_main(cpu: u64) -> ! {
    let rd = GICR + cpu as usize * GICR_STRIDE;
    mmio_write::<u32>(rd + 0x14, 0);
    mmio_write::<u32>(rd + SGI_OFFSET + 0x80, u32::MAX);
    mmio_write::<u32>(rd + SGI_OFFSET + 0x100, 1 << 1);
    gic_cpu_interface_on();
    vol_write(core::ptr::addr_of_mut!(SECONDARY_READY), 1);
    loop {
        let at = wait_for_interrupt(1);
        vol_write(core::ptr::addr_of_mut!(SECONDARY_SEEN_AT), at);
    }
}

fn sgi_latency() -> Option<u64> {
    let r = hvc(
        smccc::PSCI_CPU_ON,
        1,
        guest_rt::secondary_entry_address(),
        1,
    );
    if r[0] != 0 {
        return None;
    }
    while vol_read(core::ptr::addr_of!(SECONDARY_READY)) == 0 {
        relax();
    }
    let mut samples = [0u64; SAMPLES];
    for s in samples.iter_mut() {
        vol_write(core::ptr::addr_of_mut!(SECONDARY_SEEN_AT), 0);
        let sent = counter();
        msr!("S3_0_C12_C11_5", (1 << 24) | (1 << 1)); // ICC_SGI1R_EL1: SGI 1 to vCPU 1
        let seen = loop {
            let seen = vol_read(core::ptr::addr_of!(SECONDARY_SEEN_AT));
            if seen != 0 {
                break seen;
            }
            relax();
        };
        *s = seen.saturating_sub(sent);
    }
    Some(ticks_to_ns(median(&mut samples) * 100))
}

fn timer_latency() -> u64 {
    let rd = GICR;
    mmio_write::<u32>(GICD, (1 << 4) | (1 << 1));
    mmio_write::<u32>(rd + 0x14, 0);
    mmio_write::<u32>(rd + SGI_OFFSET + 0x80, u32::MAX);
    mmio_write::<u32>(rd + SGI_OFFSET + 0x100, 1 << 27);
    gic_cpu_interface_on();
    let mut samples = [0u64; SAMPLES];
    for s in samples.iter_mut() {
        let deadline = counter() + 200;
        msr!("CNTV_CVAL_EL0", deadline);
        msr!("CNTV_CTL_EL0", 1);
        let at = wait_for_interrupt(27);
        msr!("CNTV_CTL_EL0", 0);
        *s = at.saturating_sub(deadline);
    }
    ticks_to_ns(median(&mut samples) * 100)
}

/// Emulated GIC register accesses, to compare with the scratch device's
/// MMIO figures: constant registers, model state, and pending state that
/// lives in the list registers.
fn gic_register_figures() {
    macro_rules! read {
        ($name:literal, $t:ty, $addr:expr) => {
            report(
                $name,
                measure(|| {
                    mmio_read::<$t>($addr);
                }),
            )
        };
    }
    macro_rules! write {
        ($name:literal, $addr:expr, $value:expr) => {
            report($name, measure(|| mmio_write::<u32>($addr, $value)))
        };
    }
    read!("gicd-typer-read", u32, GICD + 0x4);
    read!("gicd-iidr-read", u32, GICD + 0x8);
    read!("gicd-ipriorityr-read", u32, GICD + 0x420);
    write!("gicd-isenabler-write", GICD + 0x104, 0);
    write!("gicd-ipriorityr-write", GICD + 0x420, 0xa0a0_a0a0);
    read!("gicr-typer-read", u64, GICR + 0x8);
    read!("gicr-ispendr0-read", u32, GICR + SGI_OFFSET + 0x200);
    write!("gicr-isenabler0-write", GICR + SGI_OFFSET + 0x100, 0);
}

#[no_mangle]
extern "C" fn guest_main(_dtb: u64) -> ! {
    let start = counter();
    let checksum = compute_loop();
    let compute = ticks_to_ns((counter() - start) * 100);
    let under_hypervisor = hvc(smccc::HV_CALL_PING, 0, 0, 0)[1] == smccc::HV_PING_MAGIC;
    println!(
        "BENCH-INFO under-hypervisor={under_hypervisor} checksum={checksum:#x} freq={}",
        mrs!("CNTFRQ_EL0")
    );
    report("compute-loop", compute);
    if under_hypervisor {
        report(
            "hvc-null-roundtrip",
            measure(|| {
                hvc(smccc::HV_CALL_PING, 0, 0, 0);
            }),
        );
        report("sysreg-trap-write", measure(|| msr!("CONTEXTIDR_EL1", 1)));
        report(
            "mmio-read",
            measure(|| {
                mmio_read::<u64>(SCRATCH_REG);
            }),
        );
        report("mmio-write", measure(|| mmio_write::<u64>(SCRATCH_REG, 7)));
        gic_register_figures();
        if virtio_setup() {
            report(
                "virtio-notify-null",
                measure(|| mmio_write::<u32>(virtio::BASE + virtio::QUEUE_NOTIFY, 0)),
            );
        } else {
            println!("BENCH-INFO virtio-notify-null unavailable: queue setup failed");
        }
    }
    // Interrupt latencies run bare too (the guest then owns the real GIC),
    // which gives the floor the hypervisor's figures compare against.
    report("vtimer-irq-latency", timer_latency());
    match sgi_latency() {
        Some(ns) => report("sgi-ipi-latency", ns),
        None => println!("BENCH-INFO sgi-ipi-latency unavailable: CPU_ON refused"),
    }
    println!("BENCH-DONE");
    smccc::system_off()
}
