//! Arbitrary sequences of distributor/redistributor accesses, interrupts and
//! list-register traffic never panic, and no interrupt lands in two list registers.
#![no_main]
use hvcore::vgic::Vgic;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|ops: Vec<(u8, u64, u64)>| {
    let mut v = Vgic::new(2);
    let mut lrs = [[0u64; 4]; 2];
    for (op, a, b) in ops.into_iter().take(256) {
        let cpu = usize::from(op & 1);
        match op >> 1 & 7 {
            0 => { let _ = v.dist_access(cpu, a % 0x1_0000, [1, 2, 4, 8][(b & 3) as usize], b & 4 != 0, a >> 16 ^ b); }
            1 => { let _ = v.redist_access(a % 0x5_0000, [1, 2, 4, 8][(b & 3) as usize], b & 4 != 0, a >> 16 ^ b); }
            2 => { let _ = v.set_pending((a % 140) as u32, cpu); }
            3 => { let _ = v.send_sgi(cpu, a); }
            4 => { let _ = v.set_level((a % 140) as u32, cpu, b & 1 != 0); }
            5 => {
                // The guest moves one list register along pending -> active -> invalid.
                let slot = (a % 4) as usize;
                let state = lrs[cpu][slot] >> 62;
                let next = match state { 1 => 2, 2 => 0, 3 => 1, s => s };
                lrs[cpu][slot] = (lrs[cpu][slot] & !(3 << 62)) | (next << 62);
            }
            _ => {
                v.sync_lrs(cpu, &lrs[cpu]);
                v.flush_lrs(cpu, &mut lrs[cpu]);
                for i in 0..4 {
                    for j in i + 1..4 {
                        let (x, y) = (lrs[cpu][i], lrs[cpu][j]);
                        assert!(x >> 62 == 0 || y >> 62 == 0 || (x & 0xffff_ffff) != (y & 0xffff_ffff));
                    }
                }
            }
        }
    }
});
