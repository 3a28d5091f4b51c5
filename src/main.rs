//! The hypervisor binary: glue between the portable core (`hvcore`) and the
//! AArch64 hardware layer (`hv-arch`). It only exists for aarch64; on the
//! host, `cargo test` exercises the core library instead.
#![cfg_attr(target_arch = "aarch64", no_std, no_main)]

#[cfg(target_arch = "aarch64")]
extern crate alloc;

#[cfg(target_arch = "aarch64")]
mod hv;

#[cfg(not(target_arch = "aarch64"))]
fn main() {
    eprintln!("the hypervisor runs at EL2 on aarch64: build and boot it with tools/run");
}
