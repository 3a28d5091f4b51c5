//! Many unknown hypercalls in a row: each must be answered NOT_SUPPORTED.

use guest_rt::println;
use guest_rt::smccc::{hvc, NOT_SUPPORTED};

const CALLS: u32 = 5000;

pub fn run(_dtb: u64) {
    let mut wrong = 0;
    for i in 0..CALLS {
        if hvc(0xC200_0000 | u64::from(i & 0xffff), 0, 0, 0)[0] != NOT_SUPPORTED {
            wrong += 1;
        }
    }
    println!("hvc-flood: {CALLS} unknown calls, {wrong} answered other than NOT_SUPPORTED");
}
