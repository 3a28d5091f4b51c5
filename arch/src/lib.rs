//! AArch64 EL2 hardware access for the hypervisor.
//!
//! This crate is the only place with inline assembly and device registers:
//! boot entry, exception vectors, the EL2 MMU, the host GICv3, the PL011,
//! PSCI calls to firmware, caches and TLBs. Policy lives in the portable core
//! (`hvcore`) and in the hypervisor binary that glues the two together.
#![no_std]

#[cfg(target_arch = "aarch64")]
#[macro_use]
pub mod sysreg;
#[cfg(target_arch = "aarch64")]
pub mod boot;
#[cfg(target_arch = "aarch64")]
pub mod cache;
#[cfg(target_arch = "aarch64")]
pub mod cpu;
#[cfg(target_arch = "aarch64")]
pub mod fpsimd;
#[cfg(target_arch = "aarch64")]
pub mod gic;
#[cfg(target_arch = "aarch64")]
pub mod mmu;
#[cfg(target_arch = "aarch64")]
pub mod psci;
#[cfg(target_arch = "aarch64")]
pub mod uart;
#[cfg(target_arch = "aarch64")]
pub mod vectors;

/// Most physical CPUs the hypervisor drives (QEMU virt puts up to 8 on Aff0).
pub const MAX_CPUS: usize = 8;
