//! Finishing a trapped instruction: how far the guest's PC moves, whether a
//! conditional AArch32 instruction failed its condition (and so must be
//! skipped without emulation), and the guest's PSTATE afterwards (the T32
//! IT state advances past the instruction).
//!
//! Inputs are ESR_EL2 and SPSR_EL2 as the exit left them. The rules are the
//! Arm ARM's: ESR.IL gives the instruction length (a 16-bit T32 instruction
//! has IL=0); for the exception classes that carry ISS.CV/COND, a trapped
//! AArch32 instruction may have failed its condition code check, because
//! "it is IMPLEMENTATION DEFINED whether a conditional instruction that fails
//! its condition code check is trapped"; with CV=0 (allowed only for T32)
//! the condition comes from PSTATE.IT. A skipped instruction still
//! advances ITSTATE (`ITAdvance()`), like any instruction in an IT block.

/// What to do with the trapped instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrapStep {
    /// Bytes to add to ELR_EL2: 2 for a 16-bit T32 instruction, else 4.
    pub advance: u64,
    /// SPSR_EL2 to return with: the input with ITSTATE advanced (T32 only).
    pub spsr: u64,
    /// The instruction failed its condition code check: it has no effect
    /// and must be stepped over without being emulated.
    pub condition_failed: bool,
}

const EC_SHIFT: u32 = 26;
const IL: u64 = 1 << 25;
const CV: u64 = 1 << 24;
const COND_SHIFT: u32 = 20;
/// ISS.CCKNOWNPASS of a trapped AArch32 SMC (EC 0x13).
const CCKNOWNPASS: u64 = 1 << 19;

const SPSR_AARCH32: u64 = 1 << 4;
const SPSR_T: u64 = 1 << 5;
const SPSR_IT_LOW_SHIFT: u32 = 25; // IT[1:0] at SPSR[26:25]
const SPSR_IT_HIGH_SHIFT: u32 = 10; // IT[7:2] at SPSR[15:10]
/// Every SPSR bit that holds ITSTATE.
pub const SPSR_IT_MASK: u64 = (0b11 << SPSR_IT_LOW_SHIFT) | (0x3f << SPSR_IT_HIGH_SHIFT);

const COND_ALWAYS: u8 = 0b1110;

/// How the condition of a trapped AArch32 instruction is reported, by EC.
enum ConditionField {
    /// No condition: the instruction is unconditional or the class cannot fail one.
    None,
    /// ISS.CV and ISS.COND (WFx, coprocessor and FP/SIMD traps).
    CvCond,
    /// CV/COND, and CCKNOWNPASS=0 says it passed (AArch32 SMC).
    CvCondKnownPass,
}

fn condition_field(ec: u8) -> ConditionField {
    match ec {
        // WFI/WFE; MCR/MRC CP15; MCRR/MRRC CP15; MCR/MRC CP14; LDC/STC;
        // FP/SIMD access; VMRS (ID group trap); MRRC CP14.
        0x01 | 0x03 | 0x04 | 0x05 | 0x06 | 0x07 | 0x08 | 0x0c => ConditionField::CvCond,
        0x13 => ConditionField::CvCondKnownPass,
        _ => ConditionField::None,
    }
}

/// ITSTATE (IT[7:0]) from an AArch32 SPSR.
pub fn it_state(spsr: u64) -> u8 {
    let low = (spsr >> SPSR_IT_LOW_SHIFT) & 0b11;
    let high = (spsr >> SPSR_IT_HIGH_SHIFT) & 0x3f;
    (low | (high << 2)) as u8
}

fn with_it_state(spsr: u64, it: u8) -> u64 {
    let it = u64::from(it);
    (spsr & !SPSR_IT_MASK) | ((it & 0b11) << SPSR_IT_LOW_SHIFT) | ((it >> 2) << SPSR_IT_HIGH_SHIFT)
}

/// The Arm ARM's `ITAdvance()`: the IT state after one instruction of the block.
pub fn it_advance(it: u8) -> u8 {
    if it & 0b111 == 0 {
        0
    } else {
        (it & 0b1110_0000) | ((it << 1) & 0b1_1111)
    }
}

/// The Arm ARM's `ConditionHolds()` for condition `cond` and flags `nzcv` (N in bit 3).
pub fn condition_holds(cond: u8, nzcv: u8) -> bool {
    let (n, z, c, v) = (nzcv & 8 != 0, nzcv & 4 != 0, nzcv & 2 != 0, nzcv & 1 != 0);
    let base = match (cond >> 1) & 0b111 {
        0b000 => z,
        0b001 => c,
        0b010 => n,
        0b011 => v,
        0b100 => c && !z,
        0b101 => n == v,
        0b110 => n == v && !z,
        _ => true,
    };
    // Odd conditions invert, except 0b1111 which is "always" like 0b1110.
    if cond & 1 == 1 && cond != 0b1111 {
        !base
    } else {
        base
    }
}

/// The condition that applied to the trapped instruction.
fn trapped_condition(esr: u64, spsr: u64) -> u8 {
    let ec = ((esr >> EC_SHIFT) & 0x3f) as u8;
    let reported = ((esr >> COND_SHIFT) & 0xf) as u8;
    match condition_field(ec) {
        ConditionField::None => COND_ALWAYS,
        ConditionField::CvCondKnownPass if esr & CCKNOWNPASS == 0 => COND_ALWAYS,
        _ if esr & CV != 0 => reported,
        // CV=0: only T32 may report it; the condition is ITSTATE's, if in a block.
        _ => {
            let it = it_state(spsr);
            if spsr & SPSR_T != 0 && it & 0xf != 0 {
                it >> 4
            } else {
                COND_ALWAYS
            }
        }
    }
}

/// Whether the trapped code ran in AArch32 (SPSR_EL2.M[4]); AArch64 code
/// always resumes 4 bytes on with PSTATE unchanged.
#[inline(always)]
pub fn is_aarch32(spsr: u64) -> bool {
    spsr & SPSR_AARCH32 != 0
}

/// How to finish the instruction that trapped with syndrome `esr` from a
/// guest whose PSTATE was `spsr`.
///
/// From AArch64 the answer is always "4 bytes, condition passed, PSTATE
/// unchanged". From AArch32 the length follows ESR.IL (only T32 has 16-bit
/// instructions), the condition is checked against SPSR.NZCV for the classes
/// that report one, and in T32 the IT state advances.
///
/// Inlined so that the AArch64 case, every exit on the fast path, costs a
/// bit test; the AArch32 work stays out of line.
#[inline(always)]
pub fn trapped_instruction_step(esr: u64, spsr: u64) -> TrapStep {
    if !is_aarch32(spsr) {
        return TrapStep {
            advance: 4,
            spsr,
            condition_failed: false,
        };
    }
    aarch32_step(esr, spsr)
}

fn aarch32_step(esr: u64, spsr: u64) -> TrapStep {
    let thumb = spsr & SPSR_T != 0;
    let nzcv = ((spsr >> 28) & 0xf) as u8;
    let condition_failed = !condition_holds(trapped_condition(esr, spsr), nzcv);
    TrapStep {
        advance: if thumb && esr & IL == 0 { 2 } else { 4 },
        spsr: if thumb {
            with_it_state(spsr, it_advance(it_state(spsr)))
        } else {
            spsr
        },
        condition_failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USR_T32: u64 = 0x10 | SPSR_T;
    const Z: u64 = 1 << 30;

    fn wfi(il: bool) -> u64 {
        (0x01 << EC_SHIFT) | if il { IL } else { 0 } | CV | (0xe << COND_SHIFT)
    }

    fn it(spsr: u64, it: u8) -> u64 {
        with_it_state(spsr, it)
    }

    #[test]
    fn aarch64_always_steps_four_and_keeps_pstate() {
        // An AArch64 HVC imm16 or sysreg ISS can look like CV/COND: ignored.
        let sysreg = (0x18 << EC_SHIFT) | IL | CV;
        let step = trapped_instruction_step(sysreg, 0x3c5);
        assert_eq!(
            step,
            TrapStep {
                advance: 4,
                spsr: 0x3c5,
                condition_failed: false
            }
        );
        assert_eq!(trapped_instruction_step(wfi(false), 0x3c5).advance, 4);
    }

    #[test]
    fn sixteen_bit_t32_steps_two() {
        assert_eq!(trapped_instruction_step(wfi(false), USR_T32).advance, 2);
        assert_eq!(trapped_instruction_step(wfi(true), USR_T32).advance, 4);
        // A32: always 4.
        assert_eq!(trapped_instruction_step(wfi(false), 0x10).advance, 4);
    }

    #[test]
    fn it_block_advances_and_ends() {
        // ITE EQ: firstcond=EQ (0000), mask=1100 → IT = 0000_1100.
        let spsr = it(USR_T32 | Z, 0b0000_1100);
        let step = trapped_instruction_step(wfi(false), spsr);
        assert!(!step.condition_failed);
        // Second instruction of the block: IT = 0001_1000 (cond NE, last one).
        assert_eq!(it_state(step.spsr), 0b0001_1000);
        assert_eq!(step.spsr & !SPSR_IT_MASK, USR_T32 | Z);
        // After the last instruction the block is over.
        assert_eq!(it_advance(0b0001_1000), 0);
        assert_eq!(it_state(with_it_state(0, 0xa5)), 0xa5);
    }

    #[test]
    fn failed_condition_is_skipped() {
        // WFINE reported with CV=1, COND=NE while Z=1: fails.
        let esr = (0x01 << EC_SHIFT) | CV | (0x1 << COND_SHIFT);
        let step = trapped_instruction_step(esr, USR_T32 | Z);
        assert!(step.condition_failed);
        assert_eq!(step.advance, 2);
        // Same with CV=0: the condition comes from the IT block (ITE NE, first slot).
        let esr = 0x01 << EC_SHIFT;
        let spsr = it(USR_T32 | Z, 0b0001_0100);
        let step = trapped_instruction_step(esr, spsr);
        assert!(step.condition_failed);
        assert_eq!(it_state(step.spsr), 0b0000_1000);
        // CV=0 outside an IT block: unconditional.
        assert!(!trapped_instruction_step(esr, USR_T32 | Z).condition_failed);
        // A32 MCR with COND=EQ and Z clear: fails; with Z set: passes.
        let mcr = (0x03 << EC_SHIFT) | IL | CV;
        assert!(trapped_instruction_step(mcr, 0x10).condition_failed);
        assert!(!trapped_instruction_step(mcr, 0x10 | Z).condition_failed);
        // SMC32 with CCKNOWNPASS=0 passed whatever COND says.
        let smc = (0x13 << EC_SHIFT) | IL | CV | (0x1 << COND_SHIFT);
        assert!(!trapped_instruction_step(smc, 0x10 | Z).condition_failed);
        assert!(trapped_instruction_step(smc | CCKNOWNPASS, 0x10 | Z).condition_failed);
        // A data abort carries no condition (ISS bits 23:20 are SAS/SSE/SRT).
        let dabt = (0x24 << EC_SHIFT) | (1 << 24) | (0x1 << COND_SHIFT);
        assert!(!trapped_instruction_step(dabt, 0x10 | Z).condition_failed);
    }

    #[test]
    fn condition_table_matches_the_arm_arm() {
        // (cond, flags that pass, flags that fail) with flags as NZCV.
        let cases: [(u8, u8, u8); 14] = [
            (0x0, 0b0100, 0b0000), // EQ
            (0x1, 0b0000, 0b0100), // NE
            (0x2, 0b0010, 0b0000), // CS
            (0x3, 0b0000, 0b0010), // CC
            (0x4, 0b1000, 0b0000), // MI
            (0x5, 0b0000, 0b1000), // PL
            (0x6, 0b0001, 0b0000), // VS
            (0x7, 0b0000, 0b0001), // VC
            (0x8, 0b0010, 0b0110), // HI
            (0x9, 0b0110, 0b0010), // LS
            (0xa, 0b1001, 0b1000), // GE
            (0xb, 0b1000, 0b1001), // LT
            (0xc, 0b0000, 0b0100), // GT
            (0xd, 0b0100, 0b0000), // LE
        ];
        for (cond, pass, fail) in cases {
            assert!(
                condition_holds(cond, pass),
                "cond {cond:#x} flags {pass:#06b}"
            );
            assert!(
                !condition_holds(cond, fail),
                "cond {cond:#x} flags {fail:#06b}"
            );
        }
        for flags in 0..16 {
            assert!(condition_holds(0xe, flags) && condition_holds(0xf, flags));
        }
    }
}

#[cfg(any(test, kani))]
mod proofs {
    use super::*;

    proof! {
        /// For any syndrome and PSTATE: the PC advances by 2 or 4 (2 only for T32 with IL=0),
        /// PSTATE changes in the IT bits only and only in T32, ITSTATE follows ITAdvance, and
        /// only an AArch32 instruction of a class that reports a condition can fail it.
        #[unwind(2)]
        fn trap_step_is_well_formed(src) {
            let esr: u64 = src.any();
            let spsr: u64 = src.any();
            // Bias towards AArch32 T32 states with WFx/coprocessor syndromes.
            let spsr = if src.any::<bool>() { spsr | SPSR_AARCH32 } else { spsr };
            let esr = if src.any::<bool>() {
                (esr & 0x3ff_ffff) | (u64::from(src.below(16) as u8) << EC_SHIFT)
            } else {
                esr
            };
            let step = trapped_instruction_step(esr, spsr);
            let aarch32 = spsr & SPSR_AARCH32 != 0;
            let thumb = aarch32 && spsr & SPSR_T != 0;
            assert!(step.advance == 2 || step.advance == 4);
            assert_eq!(step.advance == 2, thumb && esr & IL == 0);
            assert_eq!(step.spsr & !SPSR_IT_MASK, spsr & !SPSR_IT_MASK);
            if thumb {
                assert_eq!(it_state(step.spsr), it_advance(it_state(spsr)));
            } else {
                assert_eq!(step.spsr, spsr);
            }
            let ec = ((esr >> EC_SHIFT) & 0x3f) as u8;
            if step.condition_failed {
                assert!(aarch32);
                assert!(!matches!(condition_field(ec), ConditionField::None));
            }
            cover!(step.condition_failed, "a trapped instruction failed its condition");
            cover!(step.advance == 2, "a 16-bit T32 instruction");
            cover!(thumb && it_state(spsr) & 0xf != 0 && it_state(step.spsr) == 0, "an IT block ends");
        }
    }

    proof! {
        /// ITAdvance keeps the base condition bits [7:5] while the block lasts, ends the block
        /// (IT = 0) after its last instruction, and a block has at most four instructions.
        #[unwind(6)]
        fn it_block_lasts_at_most_four_instructions(src) {
            let start: u8 = src.any();
            let mut it = start;
            let mut steps = 0;
            while it & 0xf != 0 {
                let next = it_advance(it);
                if next != 0 {
                    assert_eq!(next & 0xe0, it & 0xe0);
                }
                it = next;
                steps += 1;
                assert!(steps <= 4);
            }
            cover!(steps == 4, "an IT block of four instructions");
            cover!(steps == 0, "no IT block");
        }
    }
}
