//! HVC and trapped SMC calls: PSCI, SMCCC discovery and the hypervisor's own
//! vendor-specific calls. Unknown function IDs return NOT_SUPPORTED, as the
//! SMC Calling Convention requires.

use hv_arch::boot::GuestRegs;
use hvcore::exit_action::ExitAction;
use hvcore::exit_stats::ExitCause;
use hvcore::log_limit::Cause;
use hvcore::psci::{self, PsciCall};
use log::{info, Level};

use super::vcpu::{self, Vcpu};

/// SMCCC vendor-specific hypervisor service calls (owner 6, fast, SMC32).
pub const HV_CALL_PING: u64 = 0x8600_0001;
/// x1 = exit-cause index; returns x0 = 0, x1 = that cause's count over the VM's CPUs.
pub const HV_CALL_EXIT_COUNT: u64 = 0x8600_0002;
/// Test VMs only (`hv.testdev=on`): make the hypervisor panic, to test
/// that a panic reports its location and halts. NOT_SUPPORTED elsewhere.
pub const HV_CALL_TEST_PANIC: u64 = 0x8600_00ff;
/// "HVRUST01": answer to [`HV_CALL_PING`] in x1.
pub const HV_PING_MAGIC: u64 = 0x4856_5255_5354_3031;

const NOT_SUPPORTED: u64 = psci::NOT_SUPPORTED as u64;

/// Answer the calls that touch no shared state (the hypervisor's own
/// vendor calls, and function IDs nobody implements); `false` means the
/// call needs [`handle_psci`].
#[inline(always)]
pub fn handle_fast(vcpu: &mut Vcpu, regs: &mut GuestRegs) -> bool {
    match regs.x[0] & 0xffff_ffff {
        HV_CALL_PING => {
            regs.x[0] = 0;
            regs.x[1] = HV_PING_MAGIC;
            true
        }
        HV_CALL_EXIT_COUNT | HV_CALL_TEST_PANIC => {
            handle_vendor(vcpu, regs);
            true
        }
        id if !psci::owner_is_served(id as u32) => {
            // The common probe: counted inline, logged (debug) out of line.
            regs.x[0] = NOT_SUPPORTED;
            vcpu.events.record(Cause::UnknownSmccc);
            if Level::Debug <= log::max_level() {
                log_unknown(vcpu, id);
            }
            true
        }
        _ => handle_unknown(vcpu, regs),
    }
}

#[cold]
#[inline(never)]
fn log_unknown(vcpu: &Vcpu, id: u64) {
    super::guest_log::event(
        vcpu,
        Level::Debug,
        Cause::UnknownSmccc,
        format_args!("unknown SMCCC function {id:#x}: NOT_SUPPORTED"),
    );
}

/// Answer NOT_SUPPORTED to a call nobody implements. Guests probe for
/// services (Linux asks for several at boot): an ordinary event, counted,
/// logged only at debug level.
#[inline(always)]
fn not_supported(vcpu: &mut Vcpu, regs: &mut GuestRegs, id: u64) {
    guest_log!(
        vcpu,
        Level::Debug,
        Cause::UnknownSmccc,
        "unknown SMCCC function {id:#x}: NOT_SUPPORTED"
    );
    regs.x[0] = NOT_SUPPORTED;
}

/// Answer a function ID nobody implements with NOT_SUPPORTED; `false` for
/// a known PSCI/SMCCC call. Kept out of line so the vendor calls' path
/// stays as short as it was.
#[inline(never)]
fn handle_unknown(vcpu: &mut Vcpu, regs: &mut GuestRegs) -> bool {
    let args = [regs.x[0], regs.x[1], regs.x[2], regs.x[3]];
    let PsciCall::Unknown(id) = psci::decode(&args) else {
        return false;
    };
    not_supported(vcpu, regs, id);
    true
}

// Out of line: inlined, its exit-count loop gave the null hypercall a stack frame.
#[cold]
#[inline(never)]
fn handle_vendor(vcpu: &mut Vcpu, regs: &mut GuestRegs) {
    let function = regs.x[0] & 0xffff_ffff;
    match function {
        HV_CALL_EXIT_COUNT => match ExitCause::from_index(regs.x[1]) {
            Some(cause) => {
                regs.x[0] = 0;
                regs.x[1] = super::lifecycle::vm_exits_by(vcpu.vm, cause);
            }
            None => regs.x[0] = NOT_SUPPORTED,
        },
        HV_CALL_TEST_PANIC if vcpu.vm.test_device => {
            panic!(
                "test panic requested by vm{} vcpu{}",
                vcpu.vm.vmid, vcpu.index
            )
        }
        _ => regs.x[0] = NOT_SUPPORTED,
    }
}

/// PSCI and SMCCC calls (x0..x3 in, results in x0); unknown IDs get
/// NOT_SUPPORTED. CPU_OFF, SYSTEM_OFF and SYSTEM_RESET do not return to
/// the caller: their action says what becomes of the vCPU.
pub fn handle_psci(vcpu: &mut Vcpu, regs: &mut GuestRegs) -> ExitAction {
    let args = [regs.x[0], regs.x[1], regs.x[2], regs.x[3]];
    let result: i64 = match psci::decode(&args) {
        PsciCall::Version => psci::PSCI_VERSION_1_1 as i64,
        PsciCall::SmcccVersion => psci::SMCCC_VERSION_1_1 as i64,
        PsciCall::Features { function_id } => psci::features(function_id),
        PsciCall::SmcccArchFeatures { function_id } => psci::features(function_id),
        // Standby: returning at once is a valid (if shallow) suspend.
        PsciCall::CpuSuspend { .. } => psci::SUCCESS,
        PsciCall::MigrateInfoType => 2, // no trusted OS that needs migrating
        PsciCall::CpuOff => return ExitAction::TurnOff,
        PsciCall::CpuOn {
            target_mpidr,
            entry,
            context,
        } => {
            let outcome = vcpu.vm.power.lock().cpu_on(target_mpidr, entry);
            match outcome {
                Ok(index) => {
                    vcpu::request_start(vcpu.vm, index, entry, context);
                    psci::SUCCESS
                }
                Err(code) => {
                    guest_log!(
                        vcpu,
                        Level::Info,
                        Cause::PsciRefused,
                        "PSCI CPU_ON({target_mpidr:#x}, {entry:#x}) refused: {code}"
                    );
                    code
                }
            }
        }
        PsciCall::AffinityInfo {
            target_mpidr,
            lowest_level,
        } => vcpu
            .vm
            .power
            .lock()
            .affinity_info(target_mpidr, lowest_level),
        PsciCall::SystemOff => {
            info!("vm{}: guest requested SYSTEM_OFF", vcpu.vm.vmid);
            super::lifecycle::request_stop(vcpu.vm, "SYSTEM_OFF");
            return ExitAction::Park;
        }
        PsciCall::SystemReset if super::lifecycle::vms().len() > 1 => {
            // One VM of several restarts alone; the others keep running.
            info!("vm{}: guest requested SYSTEM_RESET", vcpu.vm.vmid);
            super::lifecycle::request_restart(vcpu.vm, "SYSTEM_RESET");
            return ExitAction::Park;
        }
        PsciCall::SystemReset => {
            info!("vm{}: guest requested SYSTEM_RESET", vcpu.vm.vmid);
            return ExitAction::ResetMachine;
        }
        // Answered by handle_fast.
        PsciCall::Unknown(_) => psci::NOT_SUPPORTED,
    };
    regs.x[0] = result as u64;
    ExitAction::Resume
}
