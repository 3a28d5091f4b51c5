//! PSCI 1.1 and SMCCC 1.1 as the guest sees them: decoding calls, and the
//! per-VM vCPU power state machine behind CPU_ON, CPU_OFF and AFFINITY_INFO.

/// Most vCPUs one VM may have.
pub const MAX_VCPUS: usize = 8;

pub const SUCCESS: i64 = 0;
pub const NOT_SUPPORTED: i64 = -1;
pub const INVALID_PARAMETERS: i64 = -2;
pub const DENIED: i64 = -3;
pub const ALREADY_ON: i64 = -4;
pub const ON_PENDING: i64 = -5;
pub const INTERNAL_FAILURE: i64 = -6;
pub const NOT_PRESENT: i64 = -7;
pub const DISABLED: i64 = -8;
pub const INVALID_ADDRESS: i64 = -9;

/// MIGRATE_INFO_TYPE answer: no Trusted OS, or one that needs no migration.
pub const MIGRATE_INFO_TYPE_NOT_REQUIRED: i64 = 2;

/// PSCI 1.1: major 1 in bits [31:16], minor 1.
pub const PSCI_VERSION_1_1: u32 = 0x0001_0001;
/// SMCCC 1.1.
pub const SMCCC_VERSION_1_1: u32 = 0x0001_0001;

const FN_PSCI_VERSION: u32 = 0x8400_0000;
const FN_CPU_SUSPEND_32: u32 = 0x8400_0001;
const FN_CPU_SUSPEND_64: u32 = 0xC400_0001;
const FN_CPU_OFF: u32 = 0x8400_0002;
const FN_CPU_ON_32: u32 = 0x8400_0003;
const FN_CPU_ON_64: u32 = 0xC400_0003;
const FN_AFFINITY_INFO_32: u32 = 0x8400_0004;
const FN_AFFINITY_INFO_64: u32 = 0xC400_0004;
const FN_MIGRATE_INFO_TYPE: u32 = 0x8400_0006;
const FN_SYSTEM_OFF: u32 = 0x8400_0008;
const FN_SYSTEM_RESET: u32 = 0x8400_0009;
const FN_PSCI_FEATURES: u32 = 0x8400_000A;
const FN_SMCCC_VERSION: u32 = 0x8000_0000;
const FN_SMCCC_ARCH_FEATURES: u32 = 0x8000_0001;

/// A decoded PSCI or SMCCC architecture call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PsciCall {
    Version,
    CpuSuspend {
        power_state: u64,
        entry: u64,
        context: u64,
    },
    CpuOff,
    CpuOn {
        target_mpidr: u64,
        entry: u64,
        context: u64,
    },
    AffinityInfo {
        target_mpidr: u64,
        lowest_level: u64,
    },
    MigrateInfoType,
    SystemOff,
    SystemReset,
    Features {
        function_id: u32,
    },
    SmcccVersion,
    SmcccArchFeatures {
        function_id: u32,
    },
    /// Any other function ID (w0).
    Unknown(u64),
}

/// Whether `function`'s owning entity (bits [29:24] of the SMCCC function
/// ID) is one whose calls this hypervisor may answer: the Arm architecture
/// service (SMCCC_VERSION, ...), the standard secure service (PSCI) or the
/// hypervisor vendor service. A call of any other owner is NOT_SUPPORTED
/// without decoding, which keeps the common guest probe as cheap as a null call.
pub fn owner_is_served(function: u32) -> bool {
    matches!((function >> 24) & 0x3f, 0 | 4 | 6)
}

/// Decode x0..x3 of an HVC/SMC. The function ID is w0: the upper half of x0
/// is ignored, and the SMC32 variants only use the low 32 bits of arguments.
pub fn decode(x: &[u64; 4]) -> PsciCall {
    let function = x[0] as u32;
    let low = |v: u64| v & 0xffff_ffff;
    match function {
        FN_PSCI_VERSION => PsciCall::Version,
        FN_CPU_SUSPEND_32 => PsciCall::CpuSuspend {
            power_state: low(x[1]),
            entry: low(x[2]),
            context: low(x[3]),
        },
        FN_CPU_SUSPEND_64 => PsciCall::CpuSuspend {
            power_state: low(x[1]),
            entry: x[2],
            context: x[3],
        },
        FN_CPU_OFF => PsciCall::CpuOff,
        FN_CPU_ON_32 => PsciCall::CpuOn {
            target_mpidr: low(x[1]),
            entry: low(x[2]),
            context: low(x[3]),
        },
        FN_CPU_ON_64 => PsciCall::CpuOn {
            target_mpidr: x[1],
            entry: x[2],
            context: x[3],
        },
        FN_AFFINITY_INFO_32 => PsciCall::AffinityInfo {
            target_mpidr: low(x[1]),
            lowest_level: low(x[2]),
        },
        FN_AFFINITY_INFO_64 => PsciCall::AffinityInfo {
            target_mpidr: x[1],
            lowest_level: low(x[2]),
        },
        FN_MIGRATE_INFO_TYPE => PsciCall::MigrateInfoType,
        FN_SYSTEM_OFF => PsciCall::SystemOff,
        FN_SYSTEM_RESET => PsciCall::SystemReset,
        FN_PSCI_FEATURES => PsciCall::Features {
            function_id: x[1] as u32,
        },
        FN_SMCCC_VERSION => PsciCall::SmcccVersion,
        FN_SMCCC_ARCH_FEATURES => PsciCall::SmcccArchFeatures {
            function_id: x[1] as u32,
        },
        _ => PsciCall::Unknown(u64::from(function)),
    }
}

/// PSCI_FEATURES / SMCCC_ARCH_FEATURES answer for `function_id`: 0 for every
/// call implemented (for CPU_SUSPEND, 0 also means the original power_state
/// format and no OS-initiated mode), NOT_SUPPORTED otherwise, including
/// SMCCC_ARCH_WORKAROUND_1/2/3 (the guest gets no firmware mitigation calls).
pub fn features(function_id: u32) -> i64 {
    match function_id {
        FN_PSCI_VERSION
        | FN_CPU_SUSPEND_32
        | FN_CPU_SUSPEND_64
        | FN_CPU_OFF
        | FN_CPU_ON_32
        | FN_CPU_ON_64
        | FN_AFFINITY_INFO_32
        | FN_AFFINITY_INFO_64
        | FN_MIGRATE_INFO_TYPE
        | FN_SYSTEM_OFF
        | FN_SYSTEM_RESET
        | FN_PSCI_FEATURES
        | FN_SMCCC_VERSION
        | FN_SMCCC_ARCH_FEATURES => SUCCESS,
        _ => NOT_SUPPORTED,
    }
}

/// Power state of one vCPU as PSCI defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerState {
    Off,
    /// CPU_ON accepted; the vCPU has not started running yet.
    OnPending,
    On,
}

/// The power states of a VM's vCPUs. Virtual MPIDRs have Aff0 = vCPU index
/// and Aff1..Aff3 = 0.
///
/// Every vCPU reaches On only through OnPending: secondaries by an accepted
/// CPU_ON, and the boot vCPU 0 because it starts OnPending (the hypervisor
/// itself powers it on). [`VcpuPower::mark_on`] then records that the vCPU
/// is about to run.
#[derive(Debug, Clone)]
pub struct VcpuPower {
    states: [PowerState; MAX_VCPUS],
    count: usize,
}

const MPIDR_AFFINITY_MASK: u64 = 0xff_00ff_ffff;

impl VcpuPower {
    /// `count` vCPUs (clamped to 1..=MAX_VCPUS): vCPU 0, the boot vCPU, is
    /// OnPending until it starts; all others are off.
    pub fn new(count: usize) -> Self {
        let mut states = [PowerState::Off; MAX_VCPUS];
        states[0] = PowerState::OnPending;
        VcpuPower {
            states,
            count: count.clamp(1, MAX_VCPUS),
        }
    }

    /// The vCPU index an MPIDR names, ignoring the non-affinity bits (U, MT, RES1).
    pub fn mpidr_to_index(&self, mpidr: u64) -> Option<usize> {
        let affinity = mpidr & MPIDR_AFFINITY_MASK;
        let index = usize::try_from(affinity).ok()?;
        (index < self.count).then_some(index)
    }

    /// State of vCPU `index` (Off for indices that do not exist).
    pub fn state(&self, index: usize) -> PowerState {
        if index < self.count {
            self.states[index]
        } else {
            PowerState::Off
        }
    }

    /// PSCI CPU_ON: on success the target becomes OnPending and its index is returned.
    pub fn cpu_on(&mut self, target_mpidr: u64, entry: u64) -> Result<usize, i64> {
        let index = self
            .mpidr_to_index(target_mpidr)
            .ok_or(INVALID_PARAMETERS)?;
        match self.states[index] {
            PowerState::On => Err(ALREADY_ON),
            PowerState::OnPending => Err(ON_PENDING),
            PowerState::Off if !entry.is_multiple_of(4) => Err(INVALID_ADDRESS),
            PowerState::Off => {
                self.states[index] = PowerState::OnPending;
                Ok(index)
            }
        }
    }

    /// The vCPU is about to run its first instruction (the boot vCPU, or an
    /// accepted CPU_ON target): OnPending becomes On. Returns false, changing
    /// nothing, for a vCPU that is not OnPending or does not exist.
    pub fn mark_on(&mut self, index: usize) -> bool {
        match self.states.get_mut(index) {
            Some(state) if index < self.count && *state == PowerState::OnPending => {
                *state = PowerState::On;
                true
            }
            _ => false,
        }
    }

    /// PSCI CPU_OFF from vCPU `index` (only a running vCPU can call it, but
    /// any state may be turned off, e.g. on a reset).
    pub fn cpu_off(&mut self, index: usize) {
        if index < self.count {
            self.states[index] = PowerState::Off;
        }
    }

    /// PSCI AFFINITY_INFO: 0 ON, 1 OFF, 2 ON_PENDING; only level 0 is supported.
    pub fn affinity_info(&self, target_mpidr: u64, lowest_level: u64) -> i64 {
        if lowest_level != 0 {
            return INVALID_PARAMETERS;
        }
        match self.mpidr_to_index(target_mpidr) {
            None => INVALID_PARAMETERS,
            Some(index) => match self.states[index] {
                PowerState::On => 0,
                PowerState::Off => 1,
                PowerState::OnPending => 2,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_calls_and_ignores_upper_half_of_x0() {
        assert_eq!(decode(&[0xffff_ffff_8400_0000, 0, 0, 0]), PsciCall::Version);
        assert_eq!(
            decode(&[0xC400_0003, 2, 0x4000_0000, 7]),
            PsciCall::CpuOn {
                target_mpidr: 2,
                entry: 0x4000_0000,
                context: 7
            }
        );
        assert_eq!(
            decode(&[0x8400_0003, 0xffff_ffff_0000_0001, 0x1_4000_0000, 9]),
            PsciCall::CpuOn {
                target_mpidr: 1,
                entry: 0x4000_0000,
                context: 9
            }
        );
        assert_eq!(
            decode(&[0xC200_1234, 0, 0, 0]),
            PsciCall::Unknown(0xC200_1234)
        );
    }

    #[test]
    fn features_report_only_implemented_calls() {
        assert_eq!(features(FN_CPU_ON_64), SUCCESS);
        assert_eq!(features(FN_SMCCC_VERSION), SUCCESS);
        assert_eq!(features(FN_SMCCC_ARCH_FEATURES), SUCCESS);
        assert_eq!(features(0x8000_7FFF), NOT_SUPPORTED); // ARCH_WORKAROUND_2
        assert_eq!(features(0x8000_3FFF), NOT_SUPPORTED); // ARCH_WORKAROUND_3
        assert_eq!(features(0x8000_8000), NOT_SUPPORTED); // ARCH_WORKAROUND_1
        assert_eq!(features(0x8400_000E), NOT_SUPPORTED); // SYSTEM_SUSPEND
    }

    #[test]
    fn cpu_on_state_machine() {
        let mut p = VcpuPower::new(2);
        assert_eq!(
            p.affinity_info(0, 0),
            2,
            "the boot vCPU is pending until it starts"
        );
        assert_eq!(p.cpu_on(0, 0x1000), Err(ON_PENDING));
        assert!(!p.mark_on(1), "a vCPU nobody turned on cannot start");
        assert_eq!(p.state(1), PowerState::Off);
        assert!(p.mark_on(0));
        assert_eq!(p.cpu_on(0, 0x1000), Err(ALREADY_ON));
        assert_eq!(p.cpu_on(5, 0x1000), Err(INVALID_PARAMETERS));
        assert_eq!(p.cpu_on(1, 0x1002), Err(INVALID_ADDRESS));
        assert_eq!(p.cpu_on(0x8000_0001, 0x1000), Ok(1)); // RES1 bit 31 ignored
        assert_eq!(p.affinity_info(1, 0), 2);
        assert_eq!(p.cpu_on(1, 0x1000), Err(ON_PENDING));
        p.mark_on(1);
        assert_eq!(p.affinity_info(1, 0), 0);
        p.cpu_off(1);
        assert_eq!(p.affinity_info(1, 0), 1);
        assert_eq!(p.affinity_info(1, 1), INVALID_PARAMETERS);
        assert_eq!(p.affinity_info(1 << 8, 0), INVALID_PARAMETERS);
    }
}

#[cfg(any(test, kani))]
mod proofs {
    use super::*;

    proof! {
        /// Decoding any register contents never panics; every ID is read from w0 only (the
        /// upper half of x0 never matters), SMC32 calls see only the low halves of their
        /// arguments, unknown IDs stay Unknown and are NOT_SUPPORTED by PSCI_FEATURES, and
        /// every call that decodes to something known is reported as supported.
        #[unwind(2)]
        fn decode_total(src) {
            // Four draws rather than `src.any::<[u64; 4]>()`: no array-building loop to unwind.
            // Half the cases aim at the PSCI and SMCCC ranges, which random bits rarely hit.
            let function = if src.any() {
                [0x8400_0000, 0xC400_0000, 0x8000_0000][src.below(3) as usize] | src.below(0x10)
            } else {
                src.any()
            };
            let x = [function, src.any(), src.any(), src.any()];
            let call = decode(&x);
            let upper_flipped = decode(&[x[0] ^ (src.any::<u64>() << 32), x[1], x[2], x[3]]);
            assert_eq!(call, upper_flipped);
            let w0 = x[0] as u32;
            match call {
                PsciCall::Unknown(id) => {
                    assert_eq!(id, x[0] & 0xffff_ffff);
                    assert_eq!(features(w0), NOT_SUPPORTED);
                }
                _ => assert_eq!(features(w0), SUCCESS),
            }
            if w0 & 0x4000_0000 == 0 {
                // SMC32 calling convention: arguments are 32-bit.
                if let PsciCall::CpuOn { target_mpidr, entry, context } = call {
                    assert!(target_mpidr >> 32 == 0 && entry >> 32 == 0 && context >> 32 == 0);
                }
            }
            crate::cover!(matches!(call, PsciCall::Unknown(_)), "an unknown function ID");
            crate::cover!(matches!(call, PsciCall::CpuOn { .. }) && w0 & 0x4000_0000 == 0, "CPU_ON, SMC32");
            crate::cover!(matches!(call, PsciCall::CpuOn { entry, .. } if entry >> 32 != 0), "CPU_ON, SMC64 with a 64-bit entry point");
            crate::cover!(matches!(call, PsciCall::Features { .. }), "PSCI_FEATURES");
        }
    }

    fn affinity_of(state: PowerState) -> i64 {
        match state {
            PowerState::On => 0,
            PowerState::Off => 1,
            PowerState::OnPending => 2,
        }
    }

    proof! {
        /// Under any sequence of CPU_ON / start / CPU_OFF on any vCPU (existing or not), a vCPU
        /// reaches On only from OnPending, CPU_ON is refused exactly with ALREADY_ON for a
        /// running vCPU, ON_PENDING for a pending one, INVALID_PARAMETERS for a missing one and
        /// INVALID_ADDRESS for an unaligned entry, and AFFINITY_INFO agrees with every state.
        #[unwind(6)]
        fn power_state_machine(src) {
            let count = 1 + src.below(3) as usize;
            let mut p = VcpuPower::new(count);
            assert_eq!(p.state(0), PowerState::OnPending);
            for _ in 0..4 {
                let target = src.below(count as u64 + 1) as usize;
                let exists = target < count;
                let before = p.state(target);
                match src.below(3) {
                    0 => {
                        let entry = src.below(8);
                        let expected = match before {
                            _ if !exists => Err(INVALID_PARAMETERS),
                            PowerState::On => Err(ALREADY_ON),
                            PowerState::OnPending => Err(ON_PENDING),
                            PowerState::Off if !entry.is_multiple_of(4) => Err(INVALID_ADDRESS),
                            PowerState::Off => Ok(target),
                        };
                        assert_eq!(p.cpu_on(target as u64, entry), expected);
                        crate::cover!(expected.is_ok() && target > 0, "CPU_ON of a secondary accepted");
                        crate::cover!(expected == Err(ALREADY_ON), "CPU_ON of a running vCPU refused");
                        crate::cover!(expected == Err(INVALID_ADDRESS), "CPU_ON with an unaligned entry refused");
                        let after = if expected.is_ok() { PowerState::OnPending } else { before };
                        assert_eq!(p.state(target), after);
                    }
                    1 => {
                        let started = p.mark_on(target);
                        assert_eq!(started, exists && before == PowerState::OnPending);
                        crate::cover!(started && target > 0, "a secondary started after CPU_ON");
                        crate::cover!(!started && exists && before == PowerState::Off, "an Off vCPU refused to start");
                        assert_eq!(p.state(target), if started { PowerState::On } else { before });
                    }
                    _ => {
                        p.cpu_off(target);
                        assert_eq!(p.state(target), PowerState::Off);
                        crate::cover!(before == PowerState::On, "a running vCPU turned off");
                    }
                }
                for index in 0..4 {
                    let answer = p.affinity_info(index as u64, 0);
                    if index < count {
                        assert_eq!(answer, affinity_of(p.state(index)));
                    } else {
                        assert_eq!(answer, INVALID_PARAMETERS);
                        assert_eq!(p.state(index), PowerState::Off);
                    }
                }
            }
        }
    }

    proof! {
        /// Calls whose owner [`owner_is_served`] rejects all decode as Unknown, so
        /// answering them NOT_SUPPORTED before decoding changes no answer.
        #[unwind(2)]
        fn unserved_owners_decode_as_unknown(src) {
            let x = [src.any::<u64>(), src.any::<u64>(), src.any::<u64>(), src.any::<u64>()];
            let served = owner_is_served(x[0] as u32);
            if !served {
                assert!(matches!(decode(&x), PsciCall::Unknown(_)));
            }
            cover!(!served, "a call of an unserved owner");
            cover!(served, "a call of a served owner");
        }
    }

    proof! {
        /// An MPIDR names vCPU n exactly when its affinity fields are (0, 0, 0, n) with n below
        /// the vCPU count; the U, MT and RES1 bits and bits [63:40] do not matter.
        #[unwind(2)]
        fn mpidr_names_only_existing_vcpus(src) {
            let count = 1 + src.below(MAX_VCPUS as u64) as usize;
            let p = VcpuPower::new(count);
            // Half the cases keep Aff1..Aff3 zero, which random bits rarely do.
            let mpidr: u64 = if src.any() {
                src.any()
            } else {
                (src.any::<u64>() & !MPIDR_AFFINITY_MASK) | src.below(16)
            };
            match p.mpidr_to_index(mpidr) {
                Some(index) => {
                    assert!(index < count);
                    assert_eq!(mpidr & 0xff, index as u64);
                    assert_eq!(mpidr & 0xff_00ff_ff00, 0);
                    crate::cover!(index > 0 && mpidr & !0xff != 0, "a secondary named with U/MT/RES1 or top bits set");
                }
                None => {
                    assert!(mpidr & 0xff_00ff_ff00 != 0 || mpidr & 0xff >= count as u64);
                    crate::cover!(mpidr & 0xff_00ff_ff00 == 0, "Aff0 beyond the vCPU count refused");
                }
            }
        }
    }
}
