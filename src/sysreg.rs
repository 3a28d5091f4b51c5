//! Emulation of trapped EL1 system-register accesses.
//!
//! HCR_EL2 makes these trap: the virtual-memory controls (TVM writes, TRVM
//! reads), the ID registers (TID3, TID1), ACTLR_EL1 (TACR), set/way cache
//! maintenance (TSW), and the GIC SGI-generation registers (IMO). This module
//! decides what each access means; the effect on real registers goes through
//! [`El1Registers`], so the same code runs against hardware and, in tests,
//! against a register file in memory.

use crate::esr::{SysRegAccess, SysRegId};
use crate::timer::PhysTimer;

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
    /// A write to the emulated EL1 physical timer (CNTP_*): its output may
    /// have changed, so the glue updates PPI 30 and rearms its deadline.
    PhysTimerWritten,
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
pub const CNTP_TVAL_EL0: SysRegId = SysRegId::new(3, 3, 14, 2, 0);
pub const CNTP_CTL_EL0: SysRegId = SysRegId::new(3, 3, 14, 2, 1);
pub const CNTP_CVAL_EL0: SysRegId = SysRegId::new(3, 3, 14, 2, 2);
/// The physical count, read through [`El1Registers`] for the timer.
pub const CNTPCT_EL0: SysRegId = SysRegId::new(3, 3, 14, 0, 1);
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

/// [`FIXED_BITS`]' registers as [`SysRegId::key`]s, in the same order.
const FIXED_BITS_KEYS: [u16; FIXED_BITS.len()] = {
    let mut keys = [0; FIXED_BITS.len()];
    let mut i = 0;
    while i < keys.len() {
        keys[i] = FIXED_BITS[i].id.key();
        i += 1;
    }
    keys
};

fn fixed_bits(id: SysRegId) -> Option<&'static FixedBits> {
    let key = id.key();
    let index = FIXED_BITS_KEYS.iter().position(|&k| k == key)?;
    FIXED_BITS.get(index)
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

/// One 4-bit ID register field, bits [shift+3:shift].
const fn field(shift: u32) -> u64 {
    0xf << shift
}

fn field_value(value: u64, shift: u32) -> u64 {
    (value >> shift) & 0xf
}

fn with_field(value: u64, shift: u32, new: u64) -> u64 {
    (value & !field(shift)) | ((new & 0xf) << shift)
}

// What the guest may see of the host's features. A feature is hidden (its
// field reads 0, "not implemented") when the hypervisor does not virtualise
// it, when it belongs to EL2/EL3, or when enabling it needs a control bit
// that the trapped-write masks above force to its ARMv8.0 value (the guest
// would see the feature but could never turn it on). On the cortex-a72 all
// of these read 0 anyway; the masks matter on newer hosts.

/// ID_AA64PFR0_EL1: EL2 [11:8] and EL3 [15:12] (the guest has neither),
/// RAS [31:28] (no error-record virtualisation; SCTLR_EL1.IESB is forced
/// clear), SVE [35:32] (ZCR_EL1 and the Z registers are not switched), SEL2
/// [39:36], MPAM [43:40], AMU [47:44], RME [55:52]. EL0/EL1 [7:0] and GIC
/// [27:24] are rewritten by `sanitize`. FP, AdvSIMD, DIT, CSV2, CSV3 pass.
const PFR0_HIDDEN: u64 =
    field(8) | field(12) | field(28) | field(32) | field(36) | field(40) | field(44) | field(52);

/// ID_AA64PFR1_EL1: only CSV2_frac [35:32] (speculation information) is
/// shown. BT, SSBS, MTE, NMI, GCS... need SCTLR_EL1 bits that are forced to
/// 0; SME, RAS_frac, MPAM_frac accompany hidden features.
const PFR1_VISIBLE: u64 = field(32);

/// ID_AA64DFR0_EL1: DebugVer [3:0], BRPs [15:12], WRPs [23:20], CTX_CMPs
/// [31:28] and DoubleLock [39:36] describe the self-hosted debug registers,
/// which the guest uses directly. Trace, PMU, SPE, TRBE, BRBE, MTPMU and
/// anything newer are hidden: none is virtualised.
const DFR0_VISIBLE: u64 = field(0) | field(12) | field(20) | field(28) | field(36);

/// ID_AA64ISAR0_EL1: TME [27:24] (SCTLR_EL1.TME is forced clear).
const ISAR0_HIDDEN: u64 = field(24);

/// ID_AA64ISAR1_EL1: pointer authentication APA [7:4], API [11:8], GPA
/// [27:24], GPI [31:28] (SCTLR_EL1.EnIA/EnIB/EnDA/EnDB are forced clear)
/// and LS64 [63:60] (SCTLR_EL1.EnALS/EnAS0 forced clear).
const ISAR1_HIDDEN: u64 = field(4) | field(8) | field(24) | field(28) | field(60);

/// ID_AA64ISAR2_EL1: pointer authentication GPA3 [11:8], APA3 [15:12],
/// PAC_frac [27:24], and MOPS [19:16] (UNDEFINED at EL1 unless
/// HCRX_EL2.MSCEn, which the hypervisor does not set).
const ISAR2_HIDDEN: u64 = field(8) | field(12) | field(16) | field(24);

/// ID_AA64MMFR0_EL1: the stage-2 granule fields TGran16_2/64_2/4_2
/// [43:32], ExS [47:44] (SCTLR_EL1.EIS/EOS are RES1), FGT [59:56] (EL2),
/// ECV [63:60] (EL2 counter controls). TGran4/TGran16 lose their 52-bit
/// (LPA2) values in `sanitize`: TCR_EL1.DS is forced clear.
const MMFR0_HIDDEN: u64 = field(32) | field(36) | field(40) | field(44) | field(56) | field(60);

/// ID_AA64MMFR1_EL1: HAFDBS [3:0] (TCR_EL1.HA/HD forced clear: a guest
/// relying on hardware dirty-bit management would fault forever), VMIDBits
/// [7:4] and VH [11:8] (EL2), HPDS [15:12] (TCR_EL1.HPDn forced clear), LO
/// [19:16] (LORegions not virtualised), PAN [23:20] (SCTLR_EL1.SPAN forced
/// set), XNX [31:28] and TWED [35:32] and HCX [43:40] (EL2), TIDCP1 [55:52]
/// and CMOW [59:56] (SCTLR_EL1 bits 63 and 32 forced clear).
const MMFR1_HIDDEN: u64 = field(0)
    | field(4)
    | field(8)
    | field(12)
    | field(16)
    | field(20)
    | field(28)
    | field(32)
    | field(40)
    | field(52)
    | field(56);

/// ID_AA64MMFR2_EL1: CnP [3:0] (TTBRn_EL1.CnP forced clear), LSM [11:8]
/// (SCTLR_EL1.nTLSMD/LSMAOE are RES1), IESB [15:12] (SCTLR_EL1.IESB forced
/// clear), NV [27:24], FWB [43:40] and EVT [59:56] (EL2), E0PD [63:60]
/// (TCR_EL1.E0PDn forced clear).
const MMFR2_HIDDEN: u64 =
    field(0) | field(8) | field(12) | field(24) | field(40) | field(56) | field(60);

const PFR0_EL0: u32 = 0;
const PFR0_EL1: u32 = 4;
const PFR0_GIC: u32 = 24;
const MMFR0_TGRAN16: u32 = 20;
const MMFR0_TGRAN4: u32 = 28;

impl IdRegisters {
    /// The ID register values a guest sees, from the host's (see the
    /// `*_HIDDEN` / `*_VISIBLE` tables for each field and why). Beyond
    /// hiding fields: EL0 and EL1 read "AArch64 only", because the AArch32
    /// ID registers read 0 (no AArch32 guests); the GIC field reads 1,
    /// because the virtual CPU interface provides the GICv3 system
    /// registers whatever the host's boot state says; and the 4 KB and
    /// 16 KB granules lose their 52-bit (LPA2) variants. ID_AA64DFR1,
    /// ID_AA64AFR0/1 (IMPLEMENTATION DEFINED) read 0.
    pub fn sanitize(hw: &HwIdValues) -> Self {
        let pfr0 = hw.id_aa64pfr0 & !PFR0_HIDDEN;
        let pfr0 = with_field(pfr0, PFR0_EL0, 1);
        let pfr0 = with_field(pfr0, PFR0_EL1, 1);
        let pfr0 = with_field(pfr0, PFR0_GIC, 1);
        let mut mmfr0 = hw.id_aa64mmfr0 & !MMFR0_HIDDEN;
        if field_value(mmfr0, MMFR0_TGRAN4) == 0b0001 {
            mmfr0 = with_field(mmfr0, MMFR0_TGRAN4, 0b0000); // 4 KB, 48-bit
        }
        if field_value(mmfr0, MMFR0_TGRAN16) == 0b0010 {
            mmfr0 = with_field(mmfr0, MMFR0_TGRAN16, 0b0001); // 16 KB, 48-bit
        }
        IdRegisters {
            values: HwIdValues {
                id_aa64pfr0: pfr0,
                id_aa64pfr1: hw.id_aa64pfr1 & PFR1_VISIBLE,
                id_aa64dfr0: hw.id_aa64dfr0 & DFR0_VISIBLE,
                id_aa64dfr1: 0,
                id_aa64isar0: hw.id_aa64isar0 & !ISAR0_HIDDEN,
                id_aa64isar1: hw.id_aa64isar1 & !ISAR1_HIDDEN,
                id_aa64isar2: hw.id_aa64isar2 & !ISAR2_HIDDEN,
                id_aa64mmfr0: mmfr0,
                id_aa64mmfr1: hw.id_aa64mmfr1 & !MMFR1_HIDDEN,
                id_aa64mmfr2: hw.id_aa64mmfr2 & !MMFR2_HIDDEN,
                id_aa64afr0: 0,
                id_aa64afr1: 0,
            },
        }
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
    /// The emulated EL1 physical timer.
    pub ptimer: PhysTimer,
}

impl VcpuSysRegs {
    pub fn new(ids: IdRegisters) -> Self {
        VcpuSysRegs {
            ids,
            ptimer: PhysTimer::default(),
        }
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
            CNTP_CTL_EL0 | CNTP_CVAL_EL0 | CNTP_TVAL_EL0 => {
                let now = hw.read(CNTPCT_EL0);
                let timer = &mut self.ptimer;
                match (id, access.read) {
                    (CNTP_CTL_EL0, true) => SysRegOutcome::Read(timer.ctl(now)),
                    (CNTP_CVAL_EL0, true) => SysRegOutcome::Read(timer.cval()),
                    (_, true) => SysRegOutcome::Read(timer.tval(now)),
                    (CNTP_CTL_EL0, false) => {
                        timer.write_ctl(write_value);
                        SysRegOutcome::PhysTimerWritten
                    }
                    (CNTP_CVAL_EL0, false) => {
                        timer.write_cval(write_value);
                        SysRegOutcome::PhysTimerWritten
                    }
                    (_, false) => {
                        timer.write_tval(now, write_value);
                        SysRegOutcome::PhysTimerWritten
                    }
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

    #[test]
    fn el1_physical_timer_is_emulated() {
        let mut v = VcpuSysRegs::new(IdRegisters::sanitize(&HwIdValues::default()));
        let mut hw = FakeEl1::default();
        hw.write(CNTPCT_EL0, 1000);
        assert_eq!(
            v.handle(&access(CNTP_TVAL_EL0, false), 500, &mut hw),
            SysRegOutcome::PhysTimerWritten
        );
        assert_eq!(
            v.handle(&access(CNTP_CVAL_EL0, true), 0, &mut hw),
            SysRegOutcome::Read(1500)
        );
        assert_eq!(
            v.handle(&access(CNTP_CTL_EL0, false), 0xff, &mut hw),
            SysRegOutcome::PhysTimerWritten
        );
        assert_eq!(
            v.handle(&access(CNTP_CTL_EL0, true), 0, &mut hw),
            SysRegOutcome::Read(0b11),
            "ENABLE and IMASK kept, not yet due"
        );
        hw.write(CNTPCT_EL0, 1600);
        assert_eq!(
            v.handle(&access(CNTP_CTL_EL0, true), 0, &mut hw),
            SysRegOutcome::Read(0b111)
        );
        assert_eq!(
            v.handle(&access(CNTP_TVAL_EL0, true), 0, &mut hw),
            SysRegOutcome::Read(u64::from((-100i32) as u32))
        );
        assert!(!v.ptimer.output(1600), "masked");
    }

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
    fn newer_host_features_the_guest_could_not_enable_are_hidden() {
        let host = HwIdValues {
            id_aa64pfr0: 0x0000_0001_1122_2222, // SVE, RAS, EL0-EL3 with AArch32, FP/AdvSIMD
            id_aa64pfr1: 0x0000_0001_0000_0121, // CSV2_frac, MTE, SSBS, BT
            id_aa64isar1: 0x0000_0000_1100_0110, // PAuth (APA, API, GPA, GPI)
            id_aa64mmfr0: 0x0000_0000_1010_0005, // TGran4 = 52-bit, TGran16 unsupported
            id_aa64mmfr1: 0x0000_0000_0021_1122, // PAN, HPDS, VH, VMIDBits, HAFDBS
            ..HOST
        };
        let ids = IdRegisters::sanitize(&host);
        assert_eq!(ids.read(ID_AA64PFR0_EL1), Some(0x0000_0000_0122_0011));
        assert_eq!(ids.read(ID_AA64PFR1_EL1), Some(0x0000_0001_0000_0000));
        assert_eq!(ids.read(ID_AA64ISAR1_EL1), Some(0));
        assert_eq!(ids.read(ID_AA64MMFR0_EL1), Some(0x0000_0000_0010_0005));
        assert_eq!(ids.read(ID_AA64MMFR1_EL1), Some(0));
        assert_eq!(ids.read(ID_AA64ZFR0_EL1), Some(0));
        assert_eq!(ids.read(SysRegId::new(3, 0, 0, 1, 0)), Some(0)); // ID_PFR0_EL1
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
        let pmccntr = SysRegId::new(3, 3, 9, 13, 0);
        assert_eq!(
            v.handle(&access(pmccntr, true), 0, &mut hw),
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
            crate::cover!(fixed.id == SCTLR_EL1 && value & fixed.res0 != 0 && value & fixed.res1 != fixed.res1, "SCTLR_EL1 written with RES0 set and RES1 clear");
            crate::cover!(fixed.id == TCR_EL1 && back != value, "a TCR_EL1 write sanitised");
        }
    }

    fn any_host(src: &mut crate::verify::Source) -> HwIdValues {
        HwIdValues {
            id_aa64pfr0: src.any(),
            id_aa64pfr1: src.any(),
            id_aa64dfr0: src.any(),
            id_aa64dfr1: src.any(),
            id_aa64isar0: src.any(),
            id_aa64isar1: src.any(),
            id_aa64isar2: src.any(),
            id_aa64mmfr0: src.any(),
            id_aa64mmfr1: src.any(),
            id_aa64mmfr2: src.any(),
            id_aa64afr0: src.any(),
            id_aa64afr1: src.any(),
        }
    }

    /// Encodings with a meaning other than "TVM register" or "ID register".
    const OTHER_HANDLED: [SysRegId; 12] = [
        CNTP_TVAL_EL0,
        CNTP_CTL_EL0,
        CNTP_CVAL_EL0,
        ACTLR_EL1,
        REVIDR_EL1,
        AIDR_EL1,
        ICC_SGI1R_EL1,
        ICC_ASGI1R_EL1,
        ICC_SGI0R_EL1,
        DC_ISW,
        DC_CSW,
        DC_CISW,
    ];

    proof! {
        /// Any access to any encoding is answered without panicking: TVM registers reach the
        /// register file, ID registers read their sanitised value and refuse writes without
        /// changing, and an encoding the hypervisor does not know is UNDEFINED and touches nothing.
        #[unwind(13)]
        fn any_access_is_answered(src) {
            let ids = IdRegisters::sanitize(&any_host(src));
            let mut v = VcpuSysRegs::new(ids);
            let mut hw = FakeEl1::default();
            // Random encodings rarely land where registers are, so two thirds of the cases
            // aim at the ID space, and at op0 1/3 with op1 0/1, where all handled encodings live.
            let id = match src.below(4) {
                0 => SysRegId::new(3, 0, 0, src.below(8) as u8, src.below(8) as u8),
                3 if src.any() => OTHER_HANDLED[src.below(OTHER_HANDLED.len() as u64) as usize],
                3 => FIXED_BITS[src.below(FIXED_BITS.len() as u64) as usize].id,
                1 => SysRegId::new(1 + 2 * src.below(2) as u8, src.below(2) as u8, src.below(16) as u8, src.below(16) as u8, src.below(8) as u8),
                _ => SysRegId::new(src.below(4) as u8, src.below(8) as u8, src.below(16) as u8, src.below(16) as u8, src.below(8) as u8),
            };
            let read: bool = src.any();
            let value: u64 = src.any();
            let outcome = v.handle(&SysRegAccess { id, rt: src.below(32) as u8, read }, value, &mut hw);
            if let Some(fixed) = fixed_bits(id) {
                assert_eq!(outcome, if read { SysRegOutcome::Read(0) } else { SysRegOutcome::Done });
                if !read {
                    assert_eq!(hw.read(id), (value & !fixed.res0) | fixed.res1);
                }
                crate::cover!(!read, "a TVM register written through");
                return;
            }
            assert!(hw.regs.is_empty(), "only TVM registers reach the real EL1 registers");
            crate::cover!(outcome == SysRegOutcome::Undefined && ids.read(id).is_some(), "an ID register write refused");
            if let Some(id_value) = ids.read(id) {
                let expected = if read { SysRegOutcome::Read(id_value) } else { SysRegOutcome::Undefined };
                assert_eq!(outcome, expected);
                assert_eq!(v.ids, ids, "ID registers are read-only");
                crate::cover!(read && id_value != 0, "a non-zero ID register read");
                return;
            }
            if matches!(id, CNTP_TVAL_EL0 | CNTP_CTL_EL0 | CNTP_CVAL_EL0) {
                // The emulated EL1 physical timer: reads answer its state, writes ask the
                // glue to re-arm it (src/timer.rs proves the values).
                if read {
                    assert!(matches!(outcome, SysRegOutcome::Read(_)));
                } else {
                    assert_eq!(outcome, SysRegOutcome::PhysTimerWritten);
                }
                crate::cover!(!read, "a physical timer register written");
                return;
            }
            let expected = match id {
                ACTLR_EL1 if read => SysRegOutcome::Read(0),
                ACTLR_EL1 => SysRegOutcome::Done,
                REVIDR_EL1 | AIDR_EL1 if read => SysRegOutcome::Read(0),
                ICC_SGI1R_EL1 | ICC_ASGI1R_EL1 if !read => SysRegOutcome::SendSgi { group1: true, value },
                ICC_SGI0R_EL1 if !read => SysRegOutcome::SendSgi { group1: false, value },
                DC_ISW if !read => SysRegOutcome::CacheMaintenanceSetWay { op: SetWayOp::Invalidate, value },
                DC_CSW if !read => SysRegOutcome::CacheMaintenanceSetWay { op: SetWayOp::Clean, value },
                DC_CISW if !read => SysRegOutcome::CacheMaintenanceSetWay { op: SetWayOp::CleanInvalidate, value },
                _ => SysRegOutcome::Undefined,
            };
            assert_eq!(outcome, expected);
            crate::cover!(matches!(outcome, SysRegOutcome::SendSgi { group1: false, .. }), "a group 0 SGI sent");
            crate::cover!(matches!(outcome, SysRegOutcome::CacheMaintenanceSetWay { .. }), "a set/way operation passed on");
            crate::cover!(outcome == SysRegOutcome::Undefined && !OTHER_HANDLED.contains(&id), "an unknown encoding UNDEFINED");
        }
    }

    proof! {
        /// Whatever the host has, the guest's ID registers read the same on every read, show
        /// no EL2, EL3, RAS, SVE, MPAM, AMU, PMU, SPE, trace, MTE, SME or pointer authentication,
        /// AArch64-only EL0/EL1 and the GICv3 system registers, and read 0 for SVE's ZFR0,
        /// the AArch32 ID registers and every reserved encoding.
        #[unwind(10)]
        fn id_registers_hide_what_is_not_virtualised(src) {
            let host = any_host(src);
            let ids = IdRegisters::sanitize(&host);
            let read = |id| ids.read(id).unwrap_or(u64::MAX);
            let fld = |id, shift| field_value(read(id), shift);
            for shift in [8, 12, 28, 32, 36, 40, 44, 52] {
                assert_eq!(fld(ID_AA64PFR0_EL1, shift), 0);
            }
            assert_eq!(fld(ID_AA64PFR0_EL1, PFR0_EL0), 1);
            assert_eq!(fld(ID_AA64PFR0_EL1, PFR0_EL1), 1);
            assert_eq!(fld(ID_AA64PFR0_EL1, PFR0_GIC), 1);
            assert_eq!(read(ID_AA64PFR1_EL1) & !field(32), 0);
            for shift in [4, 8, 32, 44, 52] {
                assert_eq!(fld(ID_AA64DFR0_EL1, shift), 0); // TraceVer, PMUVer, PMSVer, TRBE, BRBE
            }
            for shift in [4, 8, 24, 28] {
                assert_eq!(fld(ID_AA64ISAR1_EL1, shift), 0); // pointer authentication
            }
            assert_eq!(fld(ID_AA64MMFR1_EL1, 0), 0); // hardware AF/dirty management
            assert_ne!(fld(ID_AA64MMFR0_EL1, MMFR0_TGRAN4), 1);
            assert_ne!(fld(ID_AA64MMFR0_EL1, MMFR0_TGRAN16), 2);
            assert_eq!(read(ID_AA64ZFR0_EL1), 0);
            assert_eq!(read(ID_AA64DFR1_EL1) | read(ID_AA64AFR0_EL1) | read(ID_AA64AFR1_EL1), 0);
            let aarch32_or_reserved = SysRegId::new(3, 0, 0, 1 + src.below(3) as u8, src.below(8) as u8);
            assert_eq!(read(aarch32_or_reserved), 0);
            let any_id = SysRegId::new(3, 0, 0, 1 + src.below(7) as u8, src.below(8) as u8);
            assert_eq!(ids.read(any_id), ids.read(any_id));
            crate::cover!(host.id_aa64pfr0 >> 32 & 0xf != 0 && host.id_aa64isar1 >> 4 & 0xf != 0, "a host with SVE and pointer authentication");
            crate::cover!(fld(ID_AA64MMFR0_EL1, MMFR0_TGRAN4) == 0, "4 KiB granules shown");
            assert!(ids.read(SysRegId::new(3, 0, 0, 0, src.below(8) as u8)).is_none());
        }
    }
}
