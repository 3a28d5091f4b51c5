//! The hypervisor's test guest. Each check exercises one trap path and
//! prints `CHECK <name>: ok` or `CHECK <name>: FAIL <why>`; the integration
//! test in tests/ asserts every line. It ends with PSCI SYSTEM_OFF.
#![cfg_attr(target_arch = "aarch64", no_std, no_main)]

#[cfg(target_arch = "aarch64")]
mod checks;

#[cfg(not(target_arch = "aarch64"))]
fn main() {}
