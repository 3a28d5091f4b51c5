//! Guest-controlled rings and descriptors: popping chains terminates, never
//! panics, and yields only buffers inside guest memory.
#![no_main]
use hvcore::virtqueue::{GuestMemory, QueueConfig, SplitQueue, FlatMemory};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u16, u16, u16, u16, Vec<u8>)| {
    let (size, desc, avail, used, bytes) = input;
    let mut ram = FlatMemory { base: 0x1000, bytes };
    let config = QueueConfig {
        size: size % 64,
        desc_table: 0x1000 + u64::from(desc % 4096),
        avail_ring: 0x1000 + u64::from(avail % 4096),
        used_ring: 0x1000 + u64::from(used % 4096),
    };
    let Ok(mut queue) = SplitQueue::new(config, &ram) else { return };
    for _ in 0..8 {
        match queue.pop(&ram) {
            Ok(Some(chain)) => {
                assert!(chain.buffers().len() <= usize::from(config.size));
                for b in chain.buffers() {
                    assert!(ram.contains(b.addr, u64::from(b.len)));
                }
                let _ = queue.push_used(&mut ram, chain.head, 0);
            }
            _ => break,
        }
    }
});
