//! Many bad memory accesses in a row: reads of an IPA with nothing there,
//! halfword reads a device refuses, reads of an unemulated system register.
//! Each must be answered with an abort (or UNDEF), with a bounded number of
//! log lines.

use guest_rt::exceptions::{expect_exception, taken};
use guest_rt::{mmio_read, println};

const EACH: u32 = 2000;
const UNMAPPED_IPA: usize = 0x2000_0000;
/// A halfword across the scratch register's byte lanes: refused.
const SCRATCH_MISALIGNED: usize = 0x0B00_0009;

fn count(mut access: impl FnMut()) -> u32 {
    let mut taken_count = 0;
    for _ in 0..EACH {
        expect_exception();
        access();
        taken_count += taken().count as u32;
    }
    taken_count
}

pub fn run(_dtb: u64) {
    let start = guest_rt::counter();
    let unmapped = count(|| {
        let _ = mmio_read::<u32>(UNMAPPED_IPA);
    });
    let rejected = count(|| {
        let _ = mmio_read::<u16>(SCRATCH_MISALIGNED);
    });
    let undef = count(|| {
        // The PMU is hidden (MDCR_EL2.TPM traps it) and not emulated: UNDEFINED.
        let _ = guest_rt::mrs!("PMCCNTR_EL0");
    });
    let ticks = guest_rt::counter() - start;
    println!(
        "mmio-flood: aborts unmapped={unmapped} rejected={rejected} undef={undef} of {EACH} each"
    );
    println!("mmio-flood: ticks={ticks}");
}
