//! Many unknown hypercalls in a row: each must be answered NOT_SUPPORTED,
//! without a log line each, and as fast as the hypervisor's null call.

use guest_rt::println;
use guest_rt::smccc::{hvc, HV_CALL_PING, NOT_SUPPORTED};

const CALLS: u32 = 5000;

pub fn run(_dtb: u64) {
    let mut wrong = 0;
    let start = guest_rt::counter();
    for i in 0..CALLS {
        if hvc(0xC200_0000 | u64::from(i & 0xffff), 0, 0, 0)[0] != NOT_SUPPORTED {
            wrong += 1;
        }
    }
    let unknown_ticks = guest_rt::counter() - start;
    let start = guest_rt::counter();
    for _ in 0..CALLS {
        hvc(HV_CALL_PING, 0, 0, 0);
    }
    let ping_ticks = guest_rt::counter() - start;
    println!("hvc-flood: {CALLS} unknown calls, {wrong} answered other than NOT_SUPPORTED");
    println!("hvc-flood: ticks unknown={unknown_ticks} ping={ping_ticks}");
}
