//! Decoding ESR_EL2 for VM exits, and the syndromes of exceptions the
//! hypervisor injects into a guest.
//!
//! All inputs are guest-influenced register values; every function here is
//! total (no panics) and rejects syndromes the architecture does not produce
//! for the case at hand.

/// Exception classes (ESR_EL2.EC) the hypervisor handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExceptionClass {
    Unknown,
    Wfx,
    Hvc64,
    Smc64,
    SysReg64,
    InstAbortLower,
    DataAbortLower,
    SError,
    Other(u8),
}

/// ESR.EC, bits [31:26].
pub fn exception_class(esr: u64) -> ExceptionClass {
    match ((esr >> 26) & 0x3f) as u8 {
        0x00 => ExceptionClass::Unknown,
        0x01 => ExceptionClass::Wfx,
        0x16 => ExceptionClass::Hvc64,
        0x17 => ExceptionClass::Smc64,
        0x18 => ExceptionClass::SysReg64,
        0x20 => ExceptionClass::InstAbortLower,
        0x24 => ExceptionClass::DataAbortLower,
        0x2f => ExceptionClass::SError,
        other => ExceptionClass::Other(other),
    }
}

/// ESR.IL: the trapped instruction was 32 bits long.
pub fn il_bit(esr: u64) -> bool {
    esr & (1 << 25) != 0
}

/// Which wait instruction trapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WfxKind {
    Wfi,
    Wfe,
    Wfit,
    Wfet,
}

/// ISS.TI, bits [1:0], of a WFx trap.
pub fn decode_wfx(esr: u64) -> WfxKind {
    match esr & 0b11 {
        0b00 => WfxKind::Wfi,
        0b01 => WfxKind::Wfe,
        0b10 => WfxKind::Wfit,
        _ => WfxKind::Wfet,
    }
}

/// The 16-bit immediate of a trapped HVC or SMC.
pub fn hvc_smc_imm(esr: u64) -> u16 {
    (esr & 0xffff) as u16
}

/// Why an exit could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The ESR is not of the exception class this decoder handles.
    WrongClass,
    /// ISV=0: no instruction syndrome (e.g. LDP, writeback forms): cannot be emulated.
    NoSyndrome,
    /// The fault happened on the stage-1 page-table walk, not on the access itself.
    StageOneWalk,
    /// ISS.FnV=1: FAR_EL2 does not hold the faulting address, so the page
    /// offset of the access is unknown.
    FarNotValid,
    /// A combination of fields the architecture does not produce.
    Inconsistent,
}

/// One load or store to an emulated device, decoded from a stage-2 data abort.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MmioAccess {
    /// Intermediate physical address accessed.
    pub ipa: u64,
    /// Bytes accessed: 1, 2, 4 or 8.
    pub size: u8,
    pub write: bool,
    /// Transfer register: 0..=30, or 31 for XZR/WZR.
    pub reg: u8,
    /// A load that sign-extends (LDRSB/LDRSH/LDRSW).
    pub sign_extend: bool,
    /// The register is 64-bit (Xt) rather than 32-bit (Wt).
    pub reg_is_64bit: bool,
    /// Acquire/release semantics (LDAR/STLR).
    pub acquire_release: bool,
}

const ISV: u64 = 1 << 24;
const SSE: u64 = 1 << 21;
const SF: u64 = 1 << 15;
const AR: u64 = 1 << 14;
const FNV: u64 = 1 << 10;
const S1PTW: u64 = 1 << 7;
const WNR: u64 = 1 << 6;

/// Decode a data abort from a lower EL (EC 0x24) into an MMIO access.
/// The IPA is HPFAR_EL2.FIPA (bits [43:4], page number) joined with the page
/// offset from FAR_EL2.
///
/// Errors, in the order checked: not EC 0x24 ([`DecodeError::WrongClass`]);
/// S1PTW=1 ([`DecodeError::StageOneWalk`]: the guest's own page tables sit
/// in unbacked memory, which no device emulation can fix); ISV=0
/// ([`DecodeError::NoSyndrome`]: e.g. LDP/STP or writeback forms); FnV=1
/// ([`DecodeError::FarNotValid`]); and field combinations no load/store
/// instruction produces ([`DecodeError::Inconsistent`]). The caller injects
/// an external abort for all of them.
pub fn decode_data_abort(esr: u64, far: u64, hpfar: u64) -> Result<MmioAccess, DecodeError> {
    if exception_class(esr) != ExceptionClass::DataAbortLower {
        return Err(DecodeError::WrongClass);
    }
    if esr & S1PTW != 0 {
        return Err(DecodeError::StageOneWalk);
    }
    if esr & ISV == 0 {
        return Err(DecodeError::NoSyndrome);
    }
    if esr & FNV != 0 {
        return Err(DecodeError::FarNotValid);
    }
    let size = 1u8 << ((esr >> 22) & 0b11);
    let write = esr & WNR != 0;
    let sign_extend = esr & SSE != 0;
    let reg_is_64bit = esr & SF != 0;
    // Stores never sign-extend; an 8-byte access needs a 64-bit register;
    // nothing sign-extends 8 bytes; a sign-extending load into Wt cannot be
    // 4 bytes (LDRSW has only an Xt form).
    if (write && sign_extend)
        || (size == 8 && !reg_is_64bit)
        || (sign_extend && size == 8)
        || (sign_extend && size == 4 && !reg_is_64bit)
    {
        return Err(DecodeError::Inconsistent);
    }
    let page = (hpfar >> 4) & ((1u64 << 40) - 1);
    Ok(MmioAccess {
        ipa: (page << 12) | (far & 0xfff),
        size,
        write,
        reg: ((esr >> 16) & 0x1f) as u8,
        sign_extend,
        reg_is_64bit,
        acquire_release: esr & AR != 0,
    })
}

/// Data fault status (ISS.DFSC) of an abort.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultStatus {
    Translation(u8),
    AccessFlag(u8),
    Permission(u8),
    External,
    Other(u8),
}

/// ISS.DFSC, bits [5:0].
pub fn data_fault_status(esr: u64) -> FaultStatus {
    let dfsc = (esr & 0x3f) as u8;
    match dfsc {
        0x04..=0x07 => FaultStatus::Translation(dfsc & 3),
        0x09..=0x0b => FaultStatus::AccessFlag(dfsc & 3),
        0x0d..=0x0f => FaultStatus::Permission(dfsc & 3),
        0x10 => FaultStatus::External,
        other => FaultStatus::Other(other),
    }
}

fn size_mask(size: u8) -> u64 {
    match size {
        1 => 0xff,
        2 => 0xffff,
        4 => 0xffff_ffff,
        _ => u64::MAX,
    }
}

/// The value a load leaves in its register, given the device's raw value.
pub fn mmio_load_value(access: &MmioAccess, raw: u64) -> u64 {
    let bits = u32::from(access.size.min(8)) * 8;
    let value = raw & size_mask(access.size);
    let extended = if access.sign_extend && bits < 64 {
        let shift = 64 - bits;
        (((value << shift) as i64) >> shift) as u64
    } else {
        value
    };
    // Writing a Wt register zeroes bits [63:32].
    if access.reg_is_64bit {
        extended
    } else {
        extended & 0xffff_ffff
    }
}

/// The bytes a store sends to the device, from the register's value.
pub fn mmio_store_value(access: &MmioAccess, xt: u64) -> u64 {
    xt & size_mask(access.size)
}

/// Value of general-purpose register `r` (31 reads as zero: XZR).
pub fn reg_value(regs: &[u64; 31], r: u8) -> u64 {
    regs.get(usize::from(r)).copied().unwrap_or(0)
}

/// Set general-purpose register `r` (writes to 31, XZR, are discarded).
pub fn set_reg(regs: &mut [u64; 31], r: u8, value: u64) {
    if let Some(slot) = regs.get_mut(usize::from(r)) {
        *slot = value;
    }
}

/// A system register by its encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SysRegId {
    pub op0: u8,
    pub op1: u8,
    pub crn: u8,
    pub crm: u8,
    pub op2: u8,
}

impl SysRegId {
    pub const fn new(op0: u8, op1: u8, crn: u8, crm: u8, op2: u8) -> Self {
        SysRegId {
            op0,
            op1,
            crn,
            crm,
            op2,
        }
    }

    /// The encoding packed into 16 bits (op0:op1:CRn:CRm:op2, the layout of
    /// the MRS/MSR immediate), equal for equal registers: one compare
    /// instead of five on lookups in the exit path.
    pub const fn key(self) -> u16 {
        ((self.op0 as u16 & 0x3) << 14)
            | ((self.op1 as u16 & 0x7) << 11)
            | ((self.crn as u16 & 0xf) << 7)
            | ((self.crm as u16 & 0xf) << 3)
            | (self.op2 as u16 & 0x7)
    }
}

/// A trapped MSR/MRS (or SYS) instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SysRegAccess {
    pub id: SysRegId,
    /// Transfer register, 31 = XZR.
    pub rt: u8,
    /// MRS (read) rather than MSR/SYS (write).
    pub read: bool,
}

/// Decode ISS of EC 0x18: Op0[21:20], Op2[19:17], Op1[16:14], CRn[13:10], Rt[9:5], CRm[4:1], Direction[0].
pub fn decode_sysreg(esr: u64) -> Result<SysRegAccess, DecodeError> {
    if exception_class(esr) != ExceptionClass::SysReg64 {
        return Err(DecodeError::WrongClass);
    }
    let field = |shift: u32, bits: u32| ((esr >> shift) & ((1 << bits) - 1)) as u8;
    Ok(SysRegAccess {
        id: SysRegId::new(
            field(20, 2),
            field(14, 3),
            field(10, 4),
            field(1, 4),
            field(17, 3),
        ),
        rt: field(5, 5),
        read: esr & 1 != 0,
    })
}

/// DFSC/IFSC of a synchronous external abort.
pub const DFSC_SYNC_EXTERNAL: u8 = 0x10;

const EC_SHIFT: u32 = 26;
const IL: u64 = 1 << 25;

/// ESR_EL1 for an UNDEFINED instruction (EC 0, IL set).
pub fn undefined_syndrome() -> u64 {
    IL
}

/// ESR_EL1 for a data abort: EC 0x25 when the access came from EL1, 0x24 from EL0.
pub fn data_abort_syndrome(from_same_el: bool, write: bool, dfsc: u8) -> u64 {
    let ec: u64 = if from_same_el { 0x25 } else { 0x24 };
    (ec << EC_SHIFT) | IL | if write { WNR } else { 0 } | u64::from(dfsc & 0x3f)
}

/// ESR_EL1 for an instruction abort: EC 0x21 from EL1, 0x20 from EL0.
pub fn instruction_abort_syndrome(from_same_el: bool, ifsc: u8) -> u64 {
    let ec: u64 = if from_same_el { 0x21 } else { 0x20 };
    (ec << EC_SHIFT) | IL | u64::from(ifsc & 0x3f)
}

const SPSR_M_MASK: u64 = 0b1_1111;
const SPSR_AARCH32: u64 = 1 << 4;

/// Offset from VBAR_EL1 of the synchronous vector for an exception taken to
/// EL1 from the state in `spsr` (the guest's SPSR_EL2 at the exit): 0x000
/// from EL1 with SP_EL0, 0x200 from EL1 with SP_EL1, 0x400 from AArch64 EL0,
/// 0x600 from AArch32. Modes a guest cannot be in (EL2/EL3, reserved
/// encodings) count as a lower EL, so the answer is always one of the four.
pub fn vector_offset(spsr: u64) -> u64 {
    let mode = spsr & SPSR_M_MASK;
    if mode & SPSR_AARCH32 != 0 {
        0x600
    } else {
        match mode {
            0b0100 => 0x000, // EL1t
            0b0101 => 0x200, // EL1h
            _ => 0x400,      // EL0t (lower EL, AArch64)
        }
    }
}

const SPSR_NZCV: u64 = 0b1111 << 28;
const SPSR_DIT: u64 = 1 << 24;
const SPSR_PAN: u64 = 1 << 22;
const SPSR_DAIF: u64 = 0b1111 << 6;
const SPSR_EL1H: u64 = 0b0101;

/// PSTATE on entry to the guest's EL1 vector (the new SPSR_EL2), following
/// the Arm ARM's `AArch64.TakeException` for an exception taken to EL1:
///
/// - EL1h, AArch64, with D, A, I and F all masked;
/// - N, Z, C, V and DIT unchanged (bit 24 holds DIT whether the guest was in
///   AArch64 or AArch32);
/// - PAN unchanged: the architecture sets it only when SCTLR_EL1.SPAN is 0,
///   and SPAN is always 1 for our guests (RES1 on ARMv8.0, and forced to 1 by
///   the trapped-write masks in [`crate::sysreg`]);
/// - SSBS = SCTLR_EL1.DSSBS, which is always 0 here (RES0 on ARMv8.0 and
///   forced clear in [`crate::sysreg`]), so SSBS is clear;
/// - SS, IL, UAO, BTYPE cleared; TCO left clear because MTE is hidden from
///   the guest and is RES0 on cortex-a72.
pub fn injected_spsr(spsr: u64) -> u64 {
    (spsr & (SPSR_NZCV | SPSR_DIT | SPSR_PAN)) | SPSR_DAIF | SPSR_EL1H
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dabt(iss: u64) -> u64 {
        (0x24 << 26) | IL | iss
    }

    #[test]
    fn decodes_a_32bit_store_from_x5() {
        let esr = dabt(ISV | (2 << 22) | (5 << 16) | WNR);
        let a = decode_data_abort(esr, 0xffff_0000_0000_1234, 0x0b00_0000 >> 8).unwrap();
        assert_eq!(
            a,
            MmioAccess {
                ipa: 0x0b00_0234,
                size: 4,
                write: true,
                reg: 5,
                sign_extend: false,
                reg_is_64bit: false,
                acquire_release: false
            }
        );
    }

    #[test]
    fn sign_extends_loads() {
        let ldrsb_x = MmioAccess {
            ipa: 0,
            size: 1,
            write: false,
            reg: 1,
            sign_extend: true,
            reg_is_64bit: true,
            acquire_release: false,
        };
        assert_eq!(mmio_load_value(&ldrsb_x, 0x1_88), 0xffff_ffff_ffff_ff88);
        let ldrsb_w = MmioAccess {
            reg_is_64bit: false,
            ..ldrsb_x
        };
        assert_eq!(mmio_load_value(&ldrsb_w, 0x88), 0xffff_ff88);
        let ldrh = MmioAccess {
            size: 2,
            sign_extend: false,
            ..ldrsb_x
        };
        assert_eq!(mmio_load_value(&ldrh, 0xabcd_8001), 0x8001);
    }

    #[test]
    fn rejects_what_cannot_be_emulated() {
        assert_eq!(
            decode_data_abort(dabt(0), 0, 0),
            Err(DecodeError::NoSyndrome)
        );
        assert_eq!(
            decode_data_abort(dabt(ISV | S1PTW), 0, 0),
            Err(DecodeError::StageOneWalk)
        );
        assert_eq!(
            decode_data_abort(dabt(ISV | SSE | WNR), 0, 0),
            Err(DecodeError::Inconsistent)
        );
        assert_eq!(
            decode_data_abort(dabt(ISV | (3 << 22)), 0, 0),
            Err(DecodeError::Inconsistent)
        );
        assert_eq!(
            decode_data_abort(0x16 << 26, 0, 0),
            Err(DecodeError::WrongClass)
        );
        // FAR not valid: the page offset of the access is unknown.
        assert_eq!(
            decode_data_abort(dabt(ISV | FNV | (2 << 22)), 0, 0),
            Err(DecodeError::FarNotValid)
        );
        // A sign-extending 8-byte load does not exist.
        assert_eq!(
            decode_data_abort(dabt(ISV | SSE | SF | (3 << 22)), 0, 0),
            Err(DecodeError::Inconsistent)
        );
        // LDRSW Wt does not exist; LDRSW Xt does.
        assert_eq!(
            decode_data_abort(dabt(ISV | SSE | (2 << 22)), 0, 0),
            Err(DecodeError::Inconsistent)
        );
        assert!(decode_data_abort(dabt(ISV | SSE | SF | (2 << 22)), 0, 0).is_ok());
    }

    #[test]
    fn xzr_reads_zero_and_ignores_writes() {
        let mut regs = [7u64; 31];
        assert_eq!(reg_value(&regs, 31), 0);
        set_reg(&mut regs, 31, 9);
        assert_eq!(regs, [7u64; 31]);
        set_reg(&mut regs, 30, 9);
        assert_eq!(reg_value(&regs, 30), 9);
    }

    #[test]
    fn decodes_sysreg_traps() {
        // MRS x3, SCTLR_EL1: op0=3 op1=0 CRn=1 CRm=0 op2=0, read.
        let esr = (0x18 << 26) | IL | (3 << 20) | (1 << 10) | (3 << 5) | 1;
        let a = decode_sysreg(esr).unwrap();
        assert_eq!(
            a,
            SysRegAccess {
                id: SysRegId::new(3, 0, 1, 0, 0),
                rt: 3,
                read: true
            }
        );
    }

    #[test]
    fn injection_targets_the_right_vector() {
        assert_eq!(vector_offset(0x3c5), 0x200);
        assert_eq!(vector_offset(0x3c4), 0x000);
        assert_eq!(vector_offset(0x0), 0x400);
        assert_eq!(vector_offset(0x10), 0x600);
        assert_eq!(injected_spsr(0x0), 0x3c5);
        // Flags, DIT and PAN survive; SS, IL, UAO, SSBS, BTYPE and the AArch32 bits do not.
        let from_el0 = 0xf000_0000 | SPSR_DIT | SPSR_PAN | (1 << 23) | (1 << 21) | (1 << 20);
        assert_eq!(injected_spsr(from_el0 | (1 << 12) | (3 << 10)), 0xf140_03c5);
        assert_eq!(injected_spsr(0x1d3 | (1 << 27) | (1 << 5)), 0x3c5); // AArch32 SVC mode, Q, T
        assert_eq!(
            data_abort_syndrome(true, false, DFSC_SYNC_EXTERNAL) >> 26,
            0x25
        );
    }
}

#[cfg(any(test, kani))]
mod proofs {
    use super::*;

    proof! {
        /// For every ESR, FAR and HPFAR the data-abort decoder accepts exactly the lower-EL data
        /// aborts with a valid syndrome (ISV), a valid FAR (not FnV), no stage-1 walk and a
        /// consistent width, and then reports the register, width, direction and extension the
        /// ISS names, a 64-bit register for 8 bytes, and the IPA from HPFAR's page and FAR's offset.
        #[unwind(2)]
        fn data_abort_decode_is_total_and_valid(src) {
            let esr: u64 = src.any();
            // Half the cases are data aborts with a syndrome, which random bits rarely are.
            let esr = if src.any::<bool>() { (esr & 0x3ff_ffff & !S1PTW) | (0x24 << 26) | ISV } else { esr };
            let far: u64 = src.any();
            let hpfar: u64 = src.any();
            let decoded = decode_data_abort(esr, far, hpfar);
            let is_data_abort = exception_class(esr) == ExceptionClass::DataAbortLower;
            let usable = is_data_abort && esr & ISV != 0 && esr & FNV == 0 && esr & S1PTW == 0;
            let bit = |b: u64| esr & b != 0;
            // A load into a register narrower than the extension, or an 8-byte access into a
            // W register, or a sign-extending store, cannot be emulated.
            let size = 1u64 << ((esr >> 22) & 3);
            let inconsistent = (bit(WNR) && bit(SSE))
                || (size == 8 && !bit(SF))
                || (bit(SSE) && (size == 8 || (size == 4 && !bit(SF))));
            assert_eq!(decoded.is_ok(), usable && !inconsistent);
            match decoded {
                Ok(a) => {
                    assert!(usable);
                    assert_eq!(u64::from(a.reg), (esr >> 16) & 0x1f);
                    assert_eq!(u64::from(a.size), 1 << ((esr >> 22) & 3));
                    assert_eq!((a.write, a.sign_extend, a.reg_is_64bit, a.acquire_release), (bit(WNR), bit(SSE), bit(SF), bit(AR)));
                    assert!(!(a.write && a.sign_extend));
                    assert!(a.size != 8 || (a.reg_is_64bit && !a.sign_extend));
                    assert!(!(a.sign_extend && a.size == 4 && !a.reg_is_64bit));
                    assert_eq!(a.ipa, (((hpfar >> 4) & ((1 << 40) - 1)) << 12) | (far & 0xfff));
                    crate::cover!(a.write, "a store decoded");
                    crate::cover!(a.sign_extend && !a.reg_is_64bit, "a sign-extending load into a W register decoded");
                    crate::cover!(a.size == 8, "a 64-bit access decoded");
                }
                Err(e) => {
                    assert!(!usable || e == DecodeError::Inconsistent);
                    crate::cover!(e == DecodeError::Inconsistent, "an inconsistent syndrome refused");
                    crate::cover!(e == DecodeError::FarNotValid, "an abort with FnV set refused");
                }
            }
        }
    }

    proof! {
        /// A load's register value fits the register: Wt loads leave bits [63:32] zero, and
        /// zero-extending loads round-trip the device value truncated to the access size.
        #[unwind(2)]
        fn load_value_fits_register(src) {
            let esr = (src.any::<u64>() & 0x3ff_ffff) | (0x24 << 26) | ISV;
            let Ok(a) = decode_data_abort(esr, 0, 0) else { return };
            let raw: u64 = src.any();
            let negative = (raw >> (u32::from(a.size) * 8 - 1)) & 1 == 1;
            crate::cover!(a.sign_extend && negative && a.size < 4, "a negative byte or halfword sign-extended");
            crate::cover!(!a.reg_is_64bit && !a.sign_extend && raw >> 32 != 0, "a Wt load of a value with upper bits set");
            let v = mmio_load_value(&a, raw);
            if !a.reg_is_64bit {
                assert_eq!(v >> 32, 0);
            }
            if !a.sign_extend {
                assert_eq!(v, raw & size_mask(a.size));
            } else {
                // The low `size` bytes are the device's; every bit above them, up to the
                // register width, is a copy of the device value's top bit.
                let width_mask = if a.reg_is_64bit { u64::MAX } else { 0xffff_ffff };
                let sign = (raw >> (u32::from(a.size) * 8 - 1)) & 1 == 1;
                let upper = width_mask & !size_mask(a.size);
                assert_eq!(v & size_mask(a.size), raw & size_mask(a.size));
                assert_eq!(v & upper, if sign { upper } else { 0 });
            }
            assert_eq!(mmio_store_value(&a, raw), raw & size_mask(a.size));
        }
    }

    proof! {
        /// Sysreg decoding accepts exactly the MSR/MRS class, yields fields in range that put
        /// the ISS back together bit for bit, and the vector offset is one of four.
        #[unwind(2)]
        fn sysreg_decode_fields_in_range(src) {
            let esr: u64 = src.any();
            let esr = if src.any::<bool>() { (esr & 0x1ff_ffff) | (0x18 << 26) } else { esr };
            match decode_sysreg(esr) {
                Ok(a) => {
                    assert_eq!(exception_class(esr), ExceptionClass::SysReg64);
                    let id = a.id;
                    assert!(id.op0 < 4 && id.op1 < 8 && id.crn < 16 && id.crm < 16 && id.op2 < 8);
                    assert!(a.rt < 32);
                    let iss = (u64::from(id.op0) << 20) | (u64::from(id.op2) << 17) | (u64::from(id.op1) << 14)
                        | (u64::from(id.crn) << 10) | (u64::from(a.rt) << 5) | (u64::from(id.crm) << 1) | u64::from(a.read);
                    assert_eq!(iss, esr & 0x3f_ffff);
                    crate::cover!(a.read && id.op0 == 3, "an MRS decoded");
                    crate::cover!(!a.read && id.op0 == 1, "a system instruction (DC) decoded");
                }
                Err(e) => {
                    assert_eq!(e, DecodeError::WrongClass);
                    assert_ne!(exception_class(esr), ExceptionClass::SysReg64);
                }
            }
            let spsr: u64 = src.any();
            let offset = vector_offset(spsr);
            assert!(matches!(offset, 0x000 | 0x200 | 0x400 | 0x600));
            // Current EL with SP_EL0, current EL with SP_ELx, lower EL AArch64, lower EL AArch32.
            crate::cover!(offset == 0x000, "an exception from EL1t");
            crate::cover!(offset == 0x200, "an exception from EL1h");
            crate::cover!(offset == 0x400, "an exception from AArch64 EL0");
            crate::cover!(offset == 0x600, "an exception from AArch32");
            assert_eq!(offset == 0x600, spsr & SPSR_AARCH32 != 0);
            assert_eq!(offset == 0x200, spsr & SPSR_M_MASK == 0b0101);
        }
    }

    proof! {
        /// Two decoded system-register encodings have the same key exactly when they are
        /// the same register (the key is a lossless packing of the in-range fields).
        #[unwind(2)]
        fn sysreg_key_identifies_register(src) {
            let id = |src: &mut crate::verify::Source| {
                SysRegId::new(
                    src.below(4) as u8,
                    src.below(8) as u8,
                    src.below(16) as u8,
                    src.below(16) as u8,
                    src.below(8) as u8,
                )
            };
            let a = id(src);
            // Half the cases compare a register with a one-field variation of itself.
            let b = if src.any::<bool>() {
                let mut b = a;
                match src.below(5) {
                    0 => b.op0 = src.below(4) as u8,
                    1 => b.op1 = src.below(8) as u8,
                    2 => b.crn = src.below(16) as u8,
                    3 => b.crm = src.below(16) as u8,
                    _ => b.op2 = src.below(8) as u8,
                }
                b
            } else {
                id(src)
            };
            assert_eq!(a.key() == b.key(), a == b);
            cover!(a != b && a.op0 == b.op0 && a.op1 == b.op1, "differ only below op1");
        }
    }

    proof! {
        /// An injected exception always enters the guest's EL1h vector in AArch64 with D, A, I
        /// and F masked, keeping only the flags, DIT and PAN of the interrupted state.
        #[unwind(2)]
        fn injected_exception_enters_el1h_masked(src) {
            let spsr: u64 = src.any();
            let new = injected_spsr(spsr);
            assert_eq!(new & SPSR_M_MASK, SPSR_EL1H);
            assert_eq!(new & SPSR_DAIF, SPSR_DAIF);
            assert_eq!(new & !(SPSR_M_MASK | SPSR_DAIF), spsr & (SPSR_NZCV | SPSR_DIT | SPSR_PAN));
            crate::cover!(new & SPSR_PAN != 0 && new & SPSR_NZCV != 0, "PAN and flags carried over");
        }
    }

    proof! {
        /// Injected abort syndromes carry the right class for the source EL, IL set, the fault
        /// status and the direction, and nothing outside ESR_EL1's 32 bits.
        #[unwind(2)]
        fn abort_syndromes_are_well_formed(src) {
            let same_el: bool = src.any();
            let write: bool = src.any();
            let status: u8 = src.any();
            let data = data_abort_syndrome(same_el, write, status);
            assert_eq!(data >> 26, if same_el { 0x25 } else { 0x24 });
            assert!(il_bit(data));
            assert_eq!(data & 0x3f, u64::from(status & 0x3f));
            assert_eq!(data & WNR != 0, write);
            assert_eq!(data & ISV, 0);
            let inst = instruction_abort_syndrome(same_el, status);
            assert_eq!(inst >> 26, if same_el { 0x21 } else { 0x20 });
            assert!(il_bit(inst));
            assert_eq!(inst & 0x3f, u64::from(status & 0x3f));
            assert_eq!(exception_class(undefined_syndrome()), ExceptionClass::Unknown);
            crate::cover!(same_el && write && status & 0x3f != 0, "a store abort at the same EL with a fault status");
        }
    }
}
