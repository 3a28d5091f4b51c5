//! A vCPU's whole architectural state as plain data.
//!
//! While a vCPU runs, its state lives in the hardware of the physical CPU
//! under it. When a physical CPU is time-shared, the glue saves the state of
//! the vCPU it switches away from into a [`VcpuContext`] and loads the one it
//! switches to from its context; a context is an ordinary value, so it can
//! also be moved to another physical CPU, or written out as bytes
//! ([`VcpuContext::encode`]) and read back ([`VcpuContext::decode`]), which
//! is what snapshots and migration will be built on.
//!
//! The list registers are saved as the raw ICH_LR<n>_EL2 values; which
//! interrupts they hold is the vGIC model's business (`crate::vgic`), kept
//! in step by the usual sync before a save and refill after a restore.

/// General registers x0-x30.
pub const NUM_GPRS: usize = 31;
/// List registers a context keeps (the architectural maximum).
pub const MAX_LRS: usize = 16;
/// Active-priority registers per group (ICH_AP0R<n>/AP1R<n>, n < 4).
pub const NUM_APRS: usize = 4;

/// The EL1 and EL0 system registers a switch saves and restores: those the
/// guest can change without a trap (plus the trapped memory-control ones,
/// which live in hardware too). The order is the context's storage order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum El1Reg {
    Sctlr,
    Ttbr0,
    Ttbr1,
    Tcr,
    Mair,
    Amair,
    Vbar,
    Contextidr,
    Cpacr,
    Esr,
    Far,
    Afsr0,
    Afsr1,
    Par,
    SpEl0,
    SpEl1,
    ElrEl1,
    SpsrEl1,
    TpidrEl0,
    TpidrroEl0,
    TpidrEl1,
    Cntkctl,
    Csselr,
    Mdscr,
}

impl El1Reg {
    pub const ALL: [El1Reg; 24] = [
        El1Reg::Sctlr,
        El1Reg::Ttbr0,
        El1Reg::Ttbr1,
        El1Reg::Tcr,
        El1Reg::Mair,
        El1Reg::Amair,
        El1Reg::Vbar,
        El1Reg::Contextidr,
        El1Reg::Cpacr,
        El1Reg::Esr,
        El1Reg::Far,
        El1Reg::Afsr0,
        El1Reg::Afsr1,
        El1Reg::Par,
        El1Reg::SpEl0,
        El1Reg::SpEl1,
        El1Reg::ElrEl1,
        El1Reg::SpsrEl1,
        El1Reg::TpidrEl0,
        El1Reg::TpidrroEl0,
        El1Reg::TpidrEl1,
        El1Reg::Cntkctl,
        El1Reg::Csselr,
        El1Reg::Mdscr,
    ];
}

/// Number of saved EL1/EL0 system registers.
pub const NUM_EL1_REGS: usize = El1Reg::ALL.len();

/// FP/SIMD state: V0-V31 as (low, high) 64-bit halves, FPCR, FPSR. The
/// glue saves V0-V31 straight into `v` (`stp q<n>` order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FpState {
    pub v: [[u64; 2]; 32],
    pub fpcr: u64,
    pub fpsr: u64,
}

/// The virtual timer: CNTV_CTL_EL0, CNTV_CVAL_EL0, the VM's CNTVOFF_EL2, and
/// whether the physical timer interrupt forwarded to this vCPU (with the
/// list-register HW bit) was active when the vCPU was switched out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VtimerState {
    pub ctl: u64,
    pub cval: u64,
    pub cntvoff: u64,
    pub phys_active: bool,
}

/// The GIC virtual CPU interface: ICH_HCR_EL2, ICH_VMCR_EL2, the active
/// priorities and the list registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GicCpuState {
    pub hcr: u64,
    pub vmcr: u64,
    pub ap0r: [u32; NUM_APRS],
    pub ap1r: [u32; NUM_APRS],
    pub lrs: [u64; MAX_LRS],
}

/// The emulated EL1 physical timer (trapped CNTP_* registers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PtimerState {
    pub ctl: u64,
    pub cval: u64,
}

/// PSCI power state of the vCPU, as `crate::psci` keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PowerWord {
    #[default]
    Off,
    OnPending,
    On,
}

/// Everything a vCPU is, apart from the VM it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VcpuContext {
    pub gprs: [u64; NUM_GPRS],
    /// Where the vCPU resumes (ELR_EL2) and its PSTATE (SPSR_EL2).
    pub pc: u64,
    pub pstate: u64,
    pub el1: [u64; NUM_EL1_REGS],
    pub fp: FpState,
    pub vtimer: VtimerState,
    pub gic: GicCpuState,
    pub ptimer: PtimerState,
    pub power: PowerWord,
}

/// SPSR for a vCPU's first entry: EL1h with D, A, I, F masked.
pub const PSTATE_EL1H_MASKED: u64 = 0x3c5;
/// SCTLR_EL1 at reset: the architecture's RES1 bits, MMU and caches off.
pub const SCTLR_EL1_RESET: u64 = 0x30d0_0800;

impl VcpuContext {
    /// The state of a vCPU about to start at `entry` with `x0` (PSCI CPU_ON
    /// or the boot vCPU): EL1h, interrupts masked, MMU off, timers off, no
    /// interrupt active.
    pub fn reset(entry: u64, x0: u64, cntvoff: u64) -> Self {
        let mut el1 = [0; NUM_EL1_REGS];
        el1[El1Reg::Sctlr as usize] = SCTLR_EL1_RESET;
        let mut gprs = [0; NUM_GPRS];
        gprs[0] = x0;
        VcpuContext {
            gprs,
            pc: entry,
            pstate: PSTATE_EL1H_MASKED,
            el1,
            fp: FpState {
                v: [[0; 2]; 32],
                fpcr: 0,
                fpsr: 0,
            },
            vtimer: VtimerState {
                cntvoff,
                ..VtimerState::default()
            },
            gic: GicCpuState::default(),
            ptimer: PtimerState::default(),
            power: PowerWord::On,
        }
    }

    pub fn el1(&self, reg: El1Reg) -> u64 {
        self.el1[reg as usize]
    }

    /// The physical count at which the virtual timer's output rises if the
    /// guest changes nothing: enabled, unmasked. `None` when it cannot rise.
    /// (Already due: the deadline is in the past, and the caller sees it so.)
    pub fn vtimer_deadline(&self) -> Option<u64> {
        let enabled_unmasked = self.vtimer.ctl & 0b11 == 0b01;
        enabled_unmasked.then(|| self.vtimer.cval.saturating_add(self.vtimer.cntvoff))
    }
}

/// Words an encoded context takes: a format word, then the fields.
pub const ENCODED_WORDS: usize =
    1 + NUM_GPRS + 2 + NUM_EL1_REGS + 64 + 2 + 4 + 2 + NUM_APRS + MAX_LRS + 2 + 1;
/// Bytes an encoded context takes (little-endian words).
pub const ENCODED_SIZE: usize = ENCODED_WORDS * 8;
/// "hvCPU" and format version 1.
const MAGIC: u64 = 0x6876_4350_5500_0001;

// Where each field starts in the encoded words (word 0 is the format word).
const AT_GPRS: usize = 1;
const AT_PC: usize = AT_GPRS + NUM_GPRS;
const AT_PSTATE: usize = AT_PC + 1;
const AT_EL1: usize = AT_PSTATE + 1;
const AT_FP: usize = AT_EL1 + NUM_EL1_REGS;
const AT_FPCR: usize = AT_FP + 64;
const AT_FPSR: usize = AT_FPCR + 1;
const AT_VTIMER: usize = AT_FPSR + 1;
const AT_ICH_HCR: usize = AT_VTIMER + 4;
const AT_ICH_VMCR: usize = AT_ICH_HCR + 1;
const AT_APRS: usize = AT_ICH_VMCR + 1;
const AT_LRS: usize = AT_APRS + NUM_APRS;
const AT_PTIMER: usize = AT_LRS + MAX_LRS;
const AT_POWER: usize = AT_PTIMER + 2;
const _: () = assert!(AT_POWER + 1 == ENCODED_WORDS);

fn power_word(power: PowerWord) -> u64 {
    match power {
        PowerWord::Off => 0,
        PowerWord::OnPending => 1,
        PowerWord::On => 2,
    }
}

impl VcpuContext {
    /// The context as words: a format word, then every field in a fixed order.
    pub fn to_words(&self) -> [u64; ENCODED_WORDS] {
        let mut w = [0; ENCODED_WORDS];
        w[0] = MAGIC;
        // Element by element rather than copy_from_slice: the same code, and
        // no byte-wise memcpy for the prover to unroll.
        for (i, v) in self.gprs.iter().enumerate() {
            w[AT_GPRS + i] = *v;
        }
        w[AT_PC] = self.pc;
        w[AT_PSTATE] = self.pstate;
        for (i, v) in self.el1.iter().enumerate() {
            w[AT_EL1 + i] = *v;
        }
        for (i, half) in self.fp.v.iter().enumerate() {
            w[AT_FP + 2 * i] = half[0];
            w[AT_FP + 2 * i + 1] = half[1];
        }
        w[AT_FPCR] = self.fp.fpcr;
        w[AT_FPSR] = self.fp.fpsr;
        w[AT_VTIMER] = self.vtimer.ctl;
        w[AT_VTIMER + 1] = self.vtimer.cval;
        w[AT_VTIMER + 2] = self.vtimer.cntvoff;
        w[AT_VTIMER + 3] = u64::from(self.vtimer.phys_active);
        w[AT_ICH_HCR] = self.gic.hcr;
        w[AT_ICH_VMCR] = self.gic.vmcr;
        for i in 0..NUM_APRS {
            w[AT_APRS + i] = u64::from(self.gic.ap0r[i]) | u64::from(self.gic.ap1r[i]) << 32;
        }
        for (i, v) in self.gic.lrs.iter().enumerate() {
            w[AT_LRS + i] = *v;
        }
        w[AT_PTIMER] = self.ptimer.ctl;
        w[AT_PTIMER + 1] = self.ptimer.cval;
        w[AT_POWER] = power_word(self.power);
        w
    }

    /// A context from words written by [`to_words`](Self::to_words); `None`
    /// for anything else (format word, or a field out of range).
    pub fn from_words(w: &[u64; ENCODED_WORDS]) -> Option<Self> {
        if w[0] != MAGIC {
            return None;
        }
        let phys_active = match w[AT_VTIMER + 3] {
            0 => false,
            1 => true,
            _ => return None,
        };
        let power = match w[AT_POWER] {
            0 => PowerWord::Off,
            1 => PowerWord::OnPending,
            2 => PowerWord::On,
            _ => return None,
        };
        let gprs: [u64; NUM_GPRS] = core::array::from_fn(|i| w[AT_GPRS + i]);
        let el1: [u64; NUM_EL1_REGS] = core::array::from_fn(|i| w[AT_EL1 + i]);
        let mut v = [[0; 2]; 32];
        for (i, half) in v.iter_mut().enumerate() {
            *half = [w[AT_FP + 2 * i], w[AT_FP + 2 * i + 1]];
        }
        let mut ap0r = [0; NUM_APRS];
        let mut ap1r = [0; NUM_APRS];
        for i in 0..NUM_APRS {
            ap0r[i] = w[AT_APRS + i] as u32;
            ap1r[i] = (w[AT_APRS + i] >> 32) as u32;
        }
        let lrs: [u64; MAX_LRS] = core::array::from_fn(|i| w[AT_LRS + i]);
        Some(VcpuContext {
            gprs,
            pc: w[AT_PC],
            pstate: w[AT_PSTATE],
            el1,
            fp: FpState {
                v,
                fpcr: w[AT_FPCR],
                fpsr: w[AT_FPSR],
            },
            vtimer: VtimerState {
                ctl: w[AT_VTIMER],
                cval: w[AT_VTIMER + 1],
                cntvoff: w[AT_VTIMER + 2],
                phys_active,
            },
            gic: GicCpuState {
                hcr: w[AT_ICH_HCR],
                vmcr: w[AT_ICH_VMCR],
                ap0r,
                ap1r,
                lrs,
            },
            ptimer: PtimerState {
                ctl: w[AT_PTIMER],
                cval: w[AT_PTIMER + 1],
            },
            power,
        })
    }

    /// The context as bytes: [`to_words`](Self::to_words), little-endian.
    pub fn encode(&self) -> [u8; ENCODED_SIZE] {
        let mut out = [0; ENCODED_SIZE];
        for (bytes, word) in out.chunks_exact_mut(8).zip(self.to_words()) {
            bytes.copy_from_slice(&word.to_le_bytes());
        }
        out
    }

    /// A context from bytes written by [`encode`](Self::encode); `None` for
    /// anything else (wrong length, format word, or a field out of range).
    pub fn decode(input: &[u8]) -> Option<Self> {
        if input.len() != ENCODED_SIZE {
            return None;
        }
        let mut words = [0u64; ENCODED_WORDS];
        for (word, bytes) in words.iter_mut().zip(input.chunks_exact(8)) {
            let mut le = [0; 8];
            le.copy_from_slice(bytes);
            *word = u64::from_le_bytes(le);
        }
        Self::from_words(&words)
    }
}

#[cfg(any(test, kani))]
mod proofs {
    use super::*;

    proof! {
        /// Save → restore is the identity: any context, written out as words
        /// and read back, is the same context, field for field. The context
        /// is read from any words whose format word and two enumerations are
        /// valid: every field is one of those words as it is, so that is
        /// every context there is (drawing the fields one by one timed out
        /// in the prover).
        #[unwind(33)]
        fn save_then_restore_is_identity(src) {
            let mut words: [u64; ENCODED_WORDS] = src.any();
            words[0] = MAGIC;
            words[AT_VTIMER + 3] = src.below(2);
            words[AT_POWER] = src.below(3);
            let Some(a) = VcpuContext::from_words(&words) else {
                panic!("valid words always read");
            };
            let Some(b) = VcpuContext::from_words(&a.to_words()) else {
                panic!("a written context always reads back");
            };
            for i in 0..NUM_GPRS {
                assert!(a.gprs[i] == b.gprs[i]);
            }
            for i in 0..NUM_EL1_REGS {
                assert!(a.el1[i] == b.el1[i]);
            }
            assert!(a.pc == b.pc && a.pstate == b.pstate);
            for i in 0..32 {
                assert!(a.fp.v[i][0] == b.fp.v[i][0] && a.fp.v[i][1] == b.fp.v[i][1]);
            }
            assert!(a.fp.fpcr == b.fp.fpcr && a.fp.fpsr == b.fp.fpsr);
            assert!(a.vtimer == b.vtimer && a.ptimer == b.ptimer && a.power == b.power);
            assert!(a.gic.hcr == b.gic.hcr && a.gic.vmcr == b.gic.vmcr);
            for i in 0..NUM_APRS {
                assert!(a.gic.ap0r[i] == b.gic.ap0r[i] && a.gic.ap1r[i] == b.gic.ap1r[i]);
            }
            for i in 0..MAX_LRS {
                assert!(a.gic.lrs[i] == b.gic.lrs[i]);
            }
            cover!(a.power == PowerWord::OnPending, "a vCPU between CPU_ON and its first run");
            cover!(a.vtimer.phys_active, "a forwarded timer interrupt active at the switch");
        }
    }

    proof! {
        /// Reading is total and canonical: any words give a context or `None`,
        /// never a panic, and what is read back writes out to the same words.
        #[unwind(166)]
        fn restore_is_total_and_canonical(src) {
            let mut words: [u64; ENCODED_WORDS] = src.any();
            // The format word is right in most cases, so the fields are reached.
            if src.any::<bool>() {
                words[0] = MAGIC;
            }
            let decoded = VcpuContext::from_words(&words);
            cover!(decoded.is_some(), "well-formed words are read");
            cover!(words[0] == MAGIC && decoded.is_none(), "a field out of range is refused");
            if let Some(context) = decoded {
                let again = context.to_words();
                for i in 0..ENCODED_WORDS {
                    assert!(again[i] == words[i]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_context_starts_at_entry_with_mmu_off() {
        let c = VcpuContext::reset(0x4008_0000, 0x4800_0000, 7);
        assert_eq!(
            (c.pc, c.gprs[0], c.pstate),
            (0x4008_0000, 0x4800_0000, 0x3c5)
        );
        assert_eq!(c.el1(El1Reg::Sctlr), SCTLR_EL1_RESET);
        assert_eq!(c.vtimer.cntvoff, 7);
        assert_eq!(c.vtimer_deadline(), None);
    }

    #[test]
    fn bytes_round_trip_too() {
        let mut c = VcpuContext::reset(0x4008_0000, 0x4800_0000, 7);
        c.fp.v[31] = [u64::MAX, 0x0123_4567_89ab_cdef];
        c.gic.lrs[15] = 0xa000_0000_0000_001b;
        c.power = PowerWord::OnPending;
        assert_eq!(VcpuContext::decode(&c.encode()), Some(c));
    }

    #[test]
    fn short_long_or_foreign_bytes_are_refused() {
        let bytes = VcpuContext::reset(1, 2, 3).encode();
        assert!(VcpuContext::decode(&bytes).is_some());
        assert!(VcpuContext::decode(&bytes[..ENCODED_SIZE - 1]).is_none());
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert!(VcpuContext::decode(&longer).is_none());
        let mut foreign = bytes;
        foreign[0] ^= 1;
        assert!(VcpuContext::decode(&foreign).is_none());
    }

    #[test]
    fn vtimer_deadline_is_in_physical_counts() {
        let mut c = VcpuContext::reset(0, 0, 1000);
        c.vtimer.ctl = 1;
        c.vtimer.cval = 50;
        assert_eq!(c.vtimer_deadline(), Some(1050));
        c.vtimer.ctl = 0b11; // masked
        assert_eq!(c.vtimer_deadline(), None);
    }
}
