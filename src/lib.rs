//! The portable core of the hypervisor.
//!
//! Everything here is plain Rust: no inline assembly, no raw pointers to
//! hardware, no global state. The aarch64 binary (`src/main.rs` with the
//! `arch/` crate) feeds these modules the values it reads from hardware and
//! carries out the actions they return. The same code builds on the x86-64
//! host, where `cargo test` runs its unit and property tests, and carries
//! Kani proof harnesses (see [`verify`]).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

#[macro_use]
pub mod verify;

pub mod blk_device;
pub mod boot_image;
pub mod console;
pub mod esr;
pub mod exit_action;
pub mod exit_stats;
pub mod fdt_nops;
pub mod fdt_writer;
pub mod frame_alloc;
pub mod guest_config;
pub mod hv_console;
pub mod lazy_zero;
pub mod log_limit;
pub mod mmio;
pub mod mmio_bus;
pub mod net_device;
pub mod net_switch;
pub mod pl011;
pub mod psci;
pub mod sched;
pub mod stage2;
pub mod sysreg;
pub mod timer;
pub mod trapped_insn;
pub mod uart_tx;
pub mod vcpu_context;
pub mod vgic;
pub mod virtio_blk;
pub mod virtio_mmio;
pub mod virtq_driver;
pub mod virtqueue;
pub mod vm_spec;
