//! Try to reach memory that is not this VM's: read every 2 MiB of the first
//! 4 GiB of guest-physical space and every 1 GiB up to the 40-bit limit, and
//! write wherever the read did not answer. Only this VM's RAM and its
//! emulated devices may answer; everything else (another VM's RAM, the
//! hypervisor, the host device tree, unassigned devices) must abort. The
//! answered ranges are printed for the test to compare with the VM's
//! configuration.

use guest_rt::exceptions::{expect_exception, taken};
use guest_rt::{mmio_read, mmio_write, println};

const FINE_STEP: u64 = 2 << 20;
const FINE_END: u64 = 4 << 30;
const COARSE_STEP: u64 = 1 << 30;
const IPA_END: u64 = 1 << 40;
/// Written where a read aborted: it must abort too.
const PROBE_VALUE: u32 = 0x5afe_c0de;

/// Whether a 4-byte read at `ipa` answered (no abort).
fn read_answers(ipa: u64) -> bool {
    expect_exception();
    let _ = mmio_read::<u32>(ipa as usize);
    taken().count == 0
}

fn write_answers(ipa: u64) -> bool {
    expect_exception();
    mmio_write::<u32>(ipa as usize, PROBE_VALUE);
    taken().count == 0
}

pub fn run(_dtb: u64) {
    let addresses = (0..FINE_END)
        .step_by(FINE_STEP as usize)
        .chain((FINE_END..IPA_END).step_by(COARSE_STEP as usize));
    let (mut probes, mut writes_answered) = (0u32, 0u32);
    // Answered ranges, merged while contiguous: (start, end).
    let mut range: Option<(u64, u64)> = None;
    for ipa in addresses {
        probes += 1;
        let step = if ipa < FINE_END {
            FINE_STEP
        } else {
            COARSE_STEP
        };
        if read_answers(ipa) {
            match range {
                Some((start, end)) if end == ipa => range = Some((start, ipa + step)),
                _ => {
                    if let Some((start, end)) = range {
                        println!("probe-ipa: answered {start:#x}-{end:#x}");
                    }
                    range = Some((ipa, ipa + step));
                }
            }
        } else if write_answers(ipa) {
            writes_answered += 1;
            println!("probe-ipa: write answered at {ipa:#x} where the read aborted");
        }
    }
    if let Some((start, end)) = range {
        println!("probe-ipa: answered {start:#x}-{end:#x}");
    }
    println!("probe-ipa: {probes} probes, {writes_answered} writes answered where reads aborted");
}
