//! The hypervisor's benchmark guest: times exits with the guest's own
//! virtual counter, which under QEMU `-icount` advances with executed
//! instructions, so figures repeat run to run. Prints `BENCH name value unit`
//! lines that tools/bench collects. Also runs bare on QEMU (no hypervisor),
//! where only the compute loop is measured.
#![cfg_attr(target_arch = "aarch64", no_std, no_main)]

#[cfg(target_arch = "aarch64")]
mod bench;

#[cfg(not(target_arch = "aarch64"))]
fn main() {}
