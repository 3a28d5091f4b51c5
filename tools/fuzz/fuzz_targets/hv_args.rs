//! Any command line and any device-tree blob: parsed or rejected, never a panic.
#![no_main]
use hvcore::guest_config::{parse_host, parse_hv_args};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_hv_args(text);
    }
    let _ = parse_host(data);
});
