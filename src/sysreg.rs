//! Emulation of trapped EL1 system-register accesses.
//!
//! HCR_EL2 makes these trap: the virtual-memory controls (TVM writes, TRVM
//! reads), the ID registers (TID3, TID1), ACTLR_EL1 (TACR), set/way cache
//! maintenance (TSW), and the GIC SGI-generation registers (IMO). This module
//! decides what each access means; the effect on real registers goes through
//! [`El1Registers`], so the same code runs against hardware and, in tests,
//! against a register file in memory.

use crate::esr::{SysRegAccess, SysRegId};

/// The real EL1 registers (hardware on target; a fake in tests).
pub trait El1Registers {
    fn read(&self, id: SysRegId) -> u64;
    fn write(&mut self, id: SysRegId, value: u64);
}

/// Which set/way operation the guest asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetWayOp {
    Invalidate,
    Clean,
    CleanInvalidate,
}

/// What the hypervisor must do for one trapped access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SysRegOutcome {
    /// A write was carried out.
    Done,
    /// A read: this value goes to Xt.
    Read(u64),
    /// The access is UNDEFINED for the guest.
    Undefined,
    /// A write to ICC_SGI1R_EL1 / ICC_ASGI1R_EL1 / ICC_SGI0R_EL1.
    SendSgi { group1: bool, value: u64 },
    /// DC ISW/CSW/CISW. The hypervisor performs DC CISW: an invalidate-only
    /// operation must never discard data the hypervisor or another VM owns.
    CacheMaintenanceSetWay { op: SetWayOp, value: u64 },
}

pub const SCTLR_EL1: SysRegId = SysRegId::new(3, 0, 1, 0, 0);
pub const ACTLR_EL1: SysRegId = SysRegId::new(3, 0, 1, 0, 1);
pub const TTBR0_EL1: SysRegId = SysRegId::new(3, 0, 2, 0, 0);
pub const TTBR1_EL1: SysRegId = SysRegId::new(3, 0, 2, 0, 1);
pub const TCR_EL1: SysRegId = SysRegId::new(3, 0, 2, 0, 2);
pub const AFSR0_EL1: SysRegId = SysRegId::new(3, 0, 5, 1, 0);
pub const AFSR1_EL1: SysRegId = SysRegId::new(3, 0, 5, 1, 1);
pub const ESR_EL1: SysRegId = SysRegId::new(3, 0, 5, 2, 0);
pub const FAR_EL1: SysRegId = SysRegId::new(3, 0, 6, 0, 0);
pub const MAIR_EL1: SysRegId = SysRegId::new(3, 0, 10, 2, 0);
pub const AMAIR_EL1: SysRegId = SysRegId::new(3, 0, 10, 3, 0);
pub const CONTEXTIDR_EL1: SysRegId = SysRegId::new(3, 0, 13, 0, 1);
pub const REVIDR_EL1: SysRegId = SysRegId::new(3, 0, 0, 0, 6);
pub const AIDR_EL1: SysRegId = SysRegId::new(3, 1, 0, 0, 7);
pub const ICC_SGI1R_EL1: SysRegId = SysRegId::new(3, 0, 12, 11, 5);
pub const ICC_ASGI1R_EL1: SysRegId = SysRegId::new(3, 0, 12, 11, 6);
pub const ICC_SGI0R_EL1: SysRegId = SysRegId::new(3, 0, 12, 11, 7);
pub const DC_ISW: SysRegId = SysRegId::new(1, 0, 7, 6, 2);
pub const DC_CSW: SysRegId = SysRegId::new(1, 0, 7, 10, 2);
pub const DC_CISW: SysRegId = SysRegId::new(1, 0, 7, 14, 2);
pub const ID_AA64PFR0_EL1: SysRegId = SysRegId::new(3, 0, 0, 4, 0);
pub const ID_AA64PFR1_EL1: SysRegId = SysRegId::new(3, 0, 0, 4, 1);
pub const ID_AA64ZFR0_EL1: SysRegId = SysRegId::new(3, 0, 0, 4, 4);
pub const ID_AA64DFR0_EL1: SysRegId = SysRegId::new(3, 0, 0, 5, 0);
pub const ID_AA64DFR1_EL1: SysRegId = SysRegId::new(3, 0, 0, 5, 1);
pub const ID_AA64AFR0_EL1: SysRegId = SysRegId::new(3, 0, 0, 5, 4);
pub const ID_AA64AFR1_EL1: SysRegId = SysRegId::new(3, 0, 0, 5, 5);
pub const ID_AA64ISAR0_EL1: SysRegId = SysRegId::new(3, 0, 0, 6, 0);
pub const ID_AA64ISAR1_EL1: SysRegId = SysRegId::new(3, 0, 0, 6, 1);
pub const ID_AA64ISAR2_EL1: SysRegId = SysRegId::new(3, 0, 0, 6, 2);
pub const ID_AA64MMFR0_EL1: SysRegId = SysRegId::new(3, 0, 0, 7, 0);
pub const ID_AA64MMFR1_EL1: SysRegId = SysRegId::new(3, 0, 0, 7, 1);
pub const ID_AA64MMFR2_EL1: SysRegId = SysRegId::new(3, 0, 0, 7, 2);

/// Architecturally fixed bits of a TVM-trapped register: after a write the
/// register holds `(value & !res0) | res1`. ARMv8.0 values (cortex-a72):
/// bits of later features are RES0 because the feature is absent.
struct FixedBits {
    id: SysRegId,
    res0: u64,
    res1: u64,
}

const FIXED_BITS: [FixedBits; 11] = [
    // SCTLR_EL1 (v8.0): RES1 11, 20, 22, 23, 28, 29; RES0 6, 10, 13, 17, 21, 27, 30, 31, 32-63.
    FixedBits {
        id: SCTLR_EL1,
        res0: 0xffff_ffff_0000_0000
            | (1 << 31)
            | (1 << 30)
            | (1 << 27)
            | (1 << 21)
            | (1 << 17)
            | (1 << 13)
            | (1 << 10)
            | (1 << 6),
        res1: (1 << 29) | (1 << 28) | (1 << 23) | (1 << 22) | (1 << 20) | (1 << 11),
    },
    // TTBRn_EL1: ASID [63:48], BADDR [47:1], CnP [0] (v8.2: RES0 here).
    FixedBits {
        id: TTBR0_EL1,
        res0: 1,
        res1: 0,
    },
    FixedBits {
        id: TTBR1_EL1,
        res0: 1,
        res1: 0,
    },
    // TCR_EL1 (v8.0): RES0 6, 35, 39-63 (HA/HD, HPD, TBID, NFD... absent).
    FixedBits {
        id: TCR_EL1,
        res0: 0xffff_ff80_0000_0000 | (1 << 35) | (1 << 6),
        res1: 0,
    },
    FixedBits {
        id: AFSR0_EL1,
        res0: 0,
        res1: 0,
    },
    FixedBits {
        id: AFSR1_EL1,
        res0: 0,
        res1: 0,
    },
    // ESR_EL1: bits [63:32] RES0 on v8.0.
    FixedBits {
        id: ESR_EL1,
        res0: 0xffff_ffff_0000_0000,
        res1: 0,
    },
    FixedBits {
        id: FAR_EL1,
        res0: 0,
        res1: 0,
    },
    FixedBits {
        id: MAIR_EL1,
        res0: 0,
        res1: 0,
    },
    FixedBits {
        id: AMAIR_EL1,
        res0: 0,
        res1: 0,
    },
    // CONTEXTIDR_EL1: PROCID [31:0]; [63:32] RES0.
    FixedBits {
        id: CONTEXTIDR_EL1,
        res0: 0xffff_ffff_0000_0000,
        res1: 0,
    },
];

fn fixed_bits(id: SysRegId) -> Option<&'static FixedBits> {
    FIXED_BITS.iter().find(|f| f.id == id)
}

/// Raw host values of the ID registers, read once by the hypervisor at boot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HwIdValues {
    pub id_aa64pfr0: u64,
    pub id_aa64pfr1: u64,
    pub id_aa64dfr0: u64,
    pub id_aa64dfr1: u64,
    pub id_aa64isar0: u64,
    pub id_aa64isar1: u64,
    pub id_aa64isar2: u64,
    pub id_aa64mmfr0: u64,
    pub id_aa64mmfr1: u64,
    pub id_aa64mmfr2: u64,
    pub id_aa64afr0: u64,
    pub id_aa64afr1: u64,
}

/// The ID register values a guest sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRegisters {
    values: HwIdValues,
}

fn clear_field(value: u64, shift: u32) -> u64 {
    value & !(0xf << shift)
}

fn set_field(value: u64, shift: u32, field: u64) -> u64 {
    clear_field(value, shift) | ((field & 0xf) << shift)
}

impl IdRegisters {
    /// Hide what the guest must not see or use: EL2 and EL3 (the guest has
    /// neither), SVE, SME, MTE, AMU, MPAM, RAS, the PMU, statistical
    /// profiling and trace (none virtualised); advertise the GICv3 system
    /// register interface, which the virtual CPU interface provides.
    pub fn sanitize(hw: &HwIdValues) -> Self {
        let mut v = *hw;
        let mut pfr0 = v.id_aa64pfr0;
        for shift in [8, 12, 28, 32, 40, 44] {
            // EL2, EL3, RAS, SVE, MPAM, AMU
            pfr0 = clear_field(pfr0, shift);
        }
        v.id_aa64pfr0 = set_field(pfr0, 24, 1); // GIC: system registers v3/v4
        v.id_aa64pfr1 = clear_field(clear_field(v.id_aa64pfr1, 8), 24); // MTE, SME
        let mut dfr0 = v.id_aa64dfr0;
        for shift in [4, 8, 32, 40] {
            // TraceVer, PMUVer, PMSVer, TraceFilt
            dfr0 = clear_field(dfr0, shift);
        }
        v.id_aa64dfr0 = dfr0;
        v.id_aa64dfr1 = 0;
        v.id_aa64afr0 = 0;
        v.id_aa64afr1 = 0;
        IdRegisters { values: v }
    }

    /// The guest-visible value of an ID register in the TID3 space
    /// (op0=3, op1=0, CRn=0, CRm=1..=7); reserved encodings read as zero.
    pub fn read(&self, id: SysRegId) -> Option<u64> {
        if !(id.op0 == 3 && id.op1 == 0 && id.crn == 0 && (1..=7).contains(&id.crm)) {
            return None;
        }
        let v = &self.values;
        Some(match id {
            ID_AA64PFR0_EL1 => v.id_aa64pfr0,
            ID_AA64PFR1_EL1 => v.id_aa64pfr1,
            ID_AA64DFR0_EL1 => v.id_aa64dfr0,
            ID_AA64DFR1_EL1 => v.id_aa64dfr1,
            ID_AA64AFR0_EL1 => v.id_aa64afr0,
            ID_AA64AFR1_EL1 => v.id_aa64afr1,
            ID_AA64ISAR0_EL1 => v.id_aa64isar0,
            ID_AA64ISAR1_EL1 => v.id_aa64isar1,
            ID_AA64ISAR2_EL1 => v.id_aa64isar2,
            ID_AA64MMFR0_EL1 => v.id_aa64mmfr0,
            ID_AA64MMFR1_EL1 => v.id_aa64mmfr1,
            ID_AA64MMFR2_EL1 => v.id_aa64mmfr2,
            // ID_AA64ZFR0 (no SVE), the AArch32 ID registers (no AArch32 at
            // EL0/EL1 for our guests) and all reserved encodings: zero.
            _ => 0,
        })
    }
}

/// Trapped-register state of one vCPU.
#[derive(Debug, Clone)]
pub struct VcpuSysRegs {
    ids: IdRegisters,
}

impl VcpuSysRegs {
    pub fn new(ids: IdRegisters) -> Self {
        VcpuSysRegs { ids }
    }

    /// Emulate one trapped access; `write_value` is Xt for writes.
    pub fn handle(
        &mut self,
        access: &SysRegAccess,
        write_value: u64,
        hw: &mut dyn El1Registers,
    ) -> SysRegOutcome {
        let id = access.id;
        if let Some(fixed) = fixed_bits(id) {
            // Hardware is the source of truth: ESR/FAR/AFSR change on every
            // exception the guest takes, without a trap.
            return if access.read {
                SysRegOutcome::Read(hw.read(id))
            } else {
                hw.write(id, (write_value & !fixed.res0) | fixed.res1);
                SysRegOutcome::Done
            };
        }
        if let Some(value) = self.ids.read(id) {
            // ID registers are read-only: MSR to them is UNDEFINED.
            return if access.read {
                SysRegOutcome::Read(value)
            } else {
                SysRegOutcome::Undefined
            };
        }
        match id {
            // IMPLEMENTATION DEFINED: the guest sees zero and cannot change the real one.
            ACTLR_EL1 => {
                if access.read {
                    SysRegOutcome::Read(0)
                } else {
                    SysRegOutcome::Done
                }
            }
            REVIDR_EL1 | AIDR_EL1 if access.read => SysRegOutcome::Read(0),
            ICC_SGI1R_EL1 | ICC_ASGI1R_EL1 | ICC_SGI0R_EL1 if !access.read => {
                SysRegOutcome::SendSgi {
                    group1: id != ICC_SGI0R_EL1,
                    value: write_value,
                }
            }
            DC_ISW | DC_CSW | DC_CISW if !access.read => {
                let op = match id {
                    DC_ISW => SetWayOp::Invalidate,
                    DC_CSW => SetWayOp::Clean,
                    _ => SetWayOp::CleanInvalidate,
                };
                SysRegOutcome::CacheMaintenanceSetWay {
                    op,
                    value: write_value,
                }
            }
            _ => SysRegOutcome::Undefined,
        }
    }
}

/// An in-memory EL1 register file for tests and proofs.
#[cfg(any(test, kani))]
#[derive(Default)]
pub struct FakeEl1 {
    pub regs: alloc::vec::Vec<(SysRegId, u64)>,
}

#[cfg(any(test, kani))]
impl El1Registers for FakeEl1 {
    fn read(&self, id: SysRegId) -> u64 {
        self.regs
            .iter()
            .find(|(r, _)| *r == id)
            .map_or(0, |(_, v)| *v)
    }
    fn write(&mut self, id: SysRegId, value: u64) {
        match self.regs.iter_mut().find(|(r, _)| *r == id) {
            Some(slot) => slot.1 = value,
            None => self.regs.push((id, value)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: HwIdValues = HwIdValues {
        // EL0..EL3 AArch64 (1), FP/AdvSIMD 0, GIC 0 (no sysreg GIC advertised on the host read).
        id_aa64pfr0: 0x1111,
        id_aa64pfr1: 0,
        id_aa64dfr0: 0x1010_6106, // PMUVer 4? (field 8 = 1), TraceVer..
        id_aa64dfr1: 0,
        id_aa64isar0: 0x11120,
        id_aa64isar1: 0,
        id_aa64isar2: 0,
        id_aa64mmfr0: 0x1124,
        id_aa64mmfr1: 0,
        id_aa64mmfr2: 0,
        id_aa64afr0: 0,
        id_aa64afr1: 0,
    };

    fn access(id: SysRegId, read: bool) -> SysRegAccess {
        SysRegAccess { id, rt: 0, read }
    }

    #[test]
    fn sctlr_write_keeps_res1_set_and_res0_clear() {
        let mut v = VcpuSysRegs::new(IdRegisters::sanitize(&HOST));
        let mut hw = FakeEl1::default();
        assert_eq!(
            v.handle(&access(SCTLR_EL1, false), 0x1 | (1 << 6), &mut hw),
            SysRegOutcome::Done
        );
        let SysRegOutcome::Read(back) = v.handle(&access(SCTLR_EL1, true), 0, &mut hw) else {
            panic!()
        };
        assert_eq!(back, 0x30d0_0801);
    }

    #[test]
    fn id_registers_are_sanitised_and_read_only() {
        let mut v = VcpuSysRegs::new(IdRegisters::sanitize(&HOST));
        let mut hw = FakeEl1::default();
        let SysRegOutcome::Read(pfr0) = v.handle(&access(ID_AA64PFR0_EL1, true), 0, &mut hw) else {
            panic!()
        };
        assert_eq!((pfr0 >> 8) & 0xf, 0);
        assert_eq!((pfr0 >> 12) & 0xf, 0);
        assert_eq!((pfr0 >> 24) & 0xf, 1);
        assert_eq!(pfr0 & 0xff, 0x11);
        assert_eq!(
            v.handle(&access(ID_AA64PFR0_EL1, false), 0, &mut hw),
            SysRegOutcome::Undefined
        );
        let reserved = SysRegId::new(3, 0, 0, 3, 7);
        assert_eq!(
            v.handle(&access(reserved, true), 0, &mut hw),
            SysRegOutcome::Read(0)
        );
    }

    #[test]
    fn sgi_set_way_and_unknown() {
        let mut v = VcpuSysRegs::new(IdRegisters::sanitize(&HOST));
        let mut hw = FakeEl1::default();
        assert_eq!(
            v.handle(&access(ICC_SGI1R_EL1, false), 42, &mut hw),
            SysRegOutcome::SendSgi {
                group1: true,
                value: 42
            }
        );
        assert_eq!(
            v.handle(&access(ICC_SGI1R_EL1, true), 0, &mut hw),
            SysRegOutcome::Undefined
        );
        assert_eq!(
            v.handle(&access(DC_ISW, false), 7, &mut hw),
            SysRegOutcome::CacheMaintenanceSetWay {
                op: SetWayOp::Invalidate,
                value: 7
            }
        );
        let cntp_ctl = SysRegId::new(3, 3, 14, 2, 1);
        assert_eq!(
            v.handle(&access(cntp_ctl, true), 0, &mut hw),
            SysRegOutcome::Undefined
        );
        assert_eq!(
            v.handle(&access(ACTLR_EL1, false), 5, &mut hw),
            SysRegOutcome::Done
        );
        assert_eq!(
            v.handle(&access(ACTLR_EL1, true), 0, &mut hw),
            SysRegOutcome::Read(0)
        );
        assert!(hw.regs.is_empty(), "nothing reached the real registers");
    }
}

#[cfg(any(test, kani))]
mod proofs {
    use super::*;

    proof! {
        /// A trapped write followed by a trapped read of any TVM register returns the written
        /// value with its RES1 bits set and RES0 bits clear.
        #[unwind(13)]
        fn tvm_write_then_read(src) {
            let which = src.below(FIXED_BITS.len() as u64) as usize;
            let fixed = &FIXED_BITS[which];
            let value: u64 = src.any();
            let mut v = VcpuSysRegs::new(IdRegisters::sanitize(&HwIdValues::default()));
            let mut hw = FakeEl1::default();
            let write = SysRegAccess { id: fixed.id, rt: 0, read: false };
            assert_eq!(v.handle(&write, value, &mut hw), SysRegOutcome::Done);
            let read = SysRegAccess { id: fixed.id, rt: 0, read: true };
            let SysRegOutcome::Read(back) = v.handle(&read, 0, &mut hw) else { panic!("read not answered") };
            assert_eq!(back & fixed.res1, fixed.res1);
            assert_eq!(back & fixed.res0, 0);
            assert_eq!(back & !(fixed.res0 | fixed.res1), value & !(fixed.res0 | fixed.res1));
        }
    }

    proof! {
        /// Any access to any encoding is answered without panicking; ID registers never change,
        /// and read 0 in the EL2, EL3, SVE and PMU fields whatever the host has.
        #[unwind(13)]
        fn any_access_is_answered(src) {
            let hw_ids = HwIdValues { id_aa64pfr0: src.any(), id_aa64dfr0: src.any(), ..HwIdValues::default() };
            let ids = IdRegisters::sanitize(&hw_ids);
            let mut v = VcpuSysRegs::new(ids);
            let mut hw = FakeEl1::default();
            let id = SysRegId::new(src.below(4) as u8, src.below(8) as u8, src.below(16) as u8, src.below(16) as u8, src.below(8) as u8);
            let read: bool = src.any();
            let _ = v.handle(&SysRegAccess { id, rt: src.below(32) as u8, read }, src.any(), &mut hw);
            let pfr0 = ids.read(ID_AA64PFR0_EL1).unwrap_or(u64::MAX);
            assert_eq!((pfr0 >> 8) & 0xf, 0);
            assert_eq!((pfr0 >> 12) & 0xf, 0);
            assert_eq!((pfr0 >> 32) & 0xf, 0);
            assert_eq!((ids.read(ID_AA64DFR0_EL1).unwrap_or(u64::MAX) >> 8) & 0xf, 0);
            if ids.read(id).is_some() && !read {
                assert!(hw.regs.is_empty());
            }
        }
    }
}
