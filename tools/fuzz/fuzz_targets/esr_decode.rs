//! Every ESR/FAR/HPFAR either decodes to a valid access or is rejected; the
//! load/store value helpers keep results inside the register width.
#![no_main]
use hvcore::esr::{decode_data_abort, decode_sysreg, mmio_load_value, mmio_store_value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u64, u64, u64, u64)| {
    let (esr, far, hpfar, raw) = input;
    for esr in [esr, (esr & 0x3ff_ffff) | (0x24 << 26) | (1 << 24), (esr & 0x1ff_ffff) | (0x18 << 26)] {
        if let Ok(a) = decode_data_abort(esr, far, hpfar) {
            assert!(a.reg <= 31 && matches!(a.size, 1 | 2 | 4 | 8));
            assert!(!(a.write && a.sign_extend));
            let v = mmio_load_value(&a, raw);
            if !a.reg_is_64bit {
                assert_eq!(v >> 32, 0);
            }
            let _ = mmio_store_value(&a, raw);
        }
        if let Ok(s) = decode_sysreg(esr) {
            assert!(s.rt < 32 && s.id.op0 < 4);
        }
    }
});
