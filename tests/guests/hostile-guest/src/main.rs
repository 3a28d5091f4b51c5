//! The hostile guest: each boot runs one attack on the hypervisor, chosen by
//! `hostile=NAME` on the guest command line (`tools/boot --guest
//! hostile-guest --append hostile=NAME`). A scenario prints what it did and
//! ends with `HOSTILE <name>: done` and PSCI SYSTEM_OFF; the integration
//! tests (tests/hostile_*.rs) then check, from lines the guest cannot forge,
//! that the hypervisor kept its promises (no hang, no flood, architectural
//! answers).
//!
//! Adding a scenario: one file in `scenarios/` with a `pub fn run(dtb: u64)`,
//! and one line in `SCENARIOS`.
#![cfg_attr(target_arch = "aarch64", no_std, no_main)]

#[cfg(target_arch = "aarch64")]
mod scenarios;

#[cfg(target_arch = "aarch64")]
mod entry {
    use guest_rt::{println, smccc};

    use crate::scenarios::SCENARIOS;

    /// The value of `hostile=` in the device tree's bootargs, if any.
    fn scenario_name(dtb: u64) -> Option<&'static [u8]> {
        let size = u32::from_be(guest_rt::mmio_read::<u32>(dtb as usize + 4)) as usize;
        // SAFETY: the hypervisor placed a device tree of `size` bytes here, in our RAM.
        let blob: &'static [u8] =
            unsafe { core::slice::from_raw_parts(dtb as *const u8, size.min(64 * 1024)) };
        const KEY: &[u8] = b"hostile=";
        let at = blob.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
        let len = blob[at..]
            .iter()
            .position(|&b| b == 0 || b == b' ')
            .unwrap_or(blob.len() - at);
        Some(&blob[at..at + len])
    }

    #[no_mangle]
    extern "C" fn guest_main(dtb: u64) -> ! {
        let Some(name) = scenario_name(dtb) else {
            println!("hostile-guest: no hostile=NAME on the command line");
            smccc::system_off();
        };
        let Some((name, run)) = SCENARIOS.iter().find(|(n, _)| n.as_bytes() == name) else {
            println!("hostile-guest: unknown scenario");
            smccc::system_off();
        };
        println!("HOSTILE {name}: start");
        run(dtb);
        println!("HOSTILE {name}: done");
        smccc::system_off()
    }

    #[no_mangle]
    extern "C" fn guest_secondary_main(cpu: u64) -> ! {
        crate::scenarios::secondary_main(cpu)
    }
}

#[cfg(not(target_arch = "aarch64"))]
fn main() {}
