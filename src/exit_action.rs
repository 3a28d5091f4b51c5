//! What an exit means, and what the run loop does about it.
//!
//! An exit handler emulates what the guest did (a register read, a
//! hypercall, an interrupt taken) and returns an [`ExitAction`]: what the
//! exit means for the vCPU that took it. It never switches vCPUs, parks the
//! CPU or waits itself. One place in the glue (the run loop at the end of
//! the lower-EL exit entries) carries the action out, as [`next_step`]
//! decides from the action and the CPU's situation — as Hafnium's
//! `handler.c` returns the vCPU to run next to its exception vector, and
//! axvisor's `arm_vcpu` returns an exit reason to its run loop.

/// What an exit means for the vCPU that took it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitAction {
    /// Emulated: go back to the guest.
    Resume,
    /// WFI: the vCPU waits until an interrupt could wake it.
    WaitForInterrupt,
    /// WFE: the vCPU waits for another to do something (release a lock).
    Yield,
    /// A physical interrupt was taken: a scheduling point (a slice may be
    /// over, a vCPU here may have been woken or started).
    InterruptTaken,
    /// PSCI CPU_OFF: the vCPU is off.
    TurnOff,
    /// Its VM was stopped (SYSTEM_OFF, a restart, the console's `stop`):
    /// the vCPU parks.
    Park,
    /// PSCI SYSTEM_RESET of the only VM: the machine resets.
    ResetMachine,
}

/// What the run loop does with an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Return to the guest that exited (its list registers up to date).
    Resume,
    /// Owned CPU: wait in place (the vCPU stays loaded) unless an interrupt
    /// is pending, then return to it.
    WaitInPlace,
    /// Time-shared CPU: the vCPU blocks until an interrupt could wake it;
    /// another runs, or the CPU waits.
    Block,
    /// Time-shared CPU: the runnable vCPU that has run least gets the CPU.
    YieldToOthers,
    /// Time-shared CPU: the scheduler decides who runs on (slice, wake-ups).
    Schedule,
    /// The vCPU is turned off and this CPU waits for another to run.
    Park,
    /// The machine resets.
    ResetMachine,
}

/// The step for `action` taken on a CPU that time-shares vCPUs (`shared`)
/// or that the vCPU owns. An owned CPU never reaches the scheduler: its
/// exits cost what they did before time-sharing existed.
pub fn next_step(action: ExitAction, shared: bool) -> Step {
    match action {
        ExitAction::Resume => Step::Resume,
        ExitAction::WaitForInterrupt if shared => Step::Block,
        ExitAction::WaitForInterrupt => Step::WaitInPlace,
        // A WFE with nothing else to run here completes at once (as WFE may).
        ExitAction::Yield if shared => Step::YieldToOthers,
        ExitAction::Yield => Step::Resume,
        ExitAction::InterruptTaken if shared => Step::Schedule,
        ExitAction::InterruptTaken => Step::Resume,
        ExitAction::TurnOff | ExitAction::Park => Step::Park,
        ExitAction::ResetMachine => Step::ResetMachine,
    }
}

/// The action of a physical-interrupt exit: one of the interrupts said the
/// VM was stopped (a kick, or a console command), or a scheduling point.
pub fn after_interrupts(vm_stopped: bool) -> ExitAction {
    if vm_stopped {
        ExitAction::Park
    } else {
        ExitAction::InterruptTaken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [ExitAction; 7] = [
        ExitAction::Resume,
        ExitAction::WaitForInterrupt,
        ExitAction::Yield,
        ExitAction::InterruptTaken,
        ExitAction::TurnOff,
        ExitAction::Park,
        ExitAction::ResetMachine,
    ];

    #[test]
    fn an_owned_cpu_never_reaches_the_scheduler() {
        for action in ALL {
            let step = next_step(action, false);
            assert!(
                !matches!(step, Step::Block | Step::YieldToOthers | Step::Schedule),
                "{action:?} -> {step:?}"
            );
        }
        assert_eq!(
            next_step(ExitAction::WaitForInterrupt, false),
            Step::WaitInPlace
        );
        assert_eq!(next_step(ExitAction::Yield, false), Step::Resume);
        assert_eq!(next_step(ExitAction::InterruptTaken, false), Step::Resume);
    }

    #[test]
    fn a_shared_cpu_schedules_at_waits_and_interrupts() {
        assert_eq!(next_step(ExitAction::WaitForInterrupt, true), Step::Block);
        assert_eq!(next_step(ExitAction::Yield, true), Step::YieldToOthers);
        assert_eq!(next_step(ExitAction::InterruptTaken, true), Step::Schedule);
        assert_eq!(next_step(ExitAction::Resume, true), Step::Resume);
    }

    #[test]
    fn off_and_stopped_vcpus_park_on_either_kind_of_cpu() {
        for shared in [false, true] {
            assert_eq!(next_step(ExitAction::TurnOff, shared), Step::Park);
            assert_eq!(next_step(ExitAction::Park, shared), Step::Park);
            assert_eq!(next_step(after_interrupts(true), shared), Step::Park);
            assert_eq!(
                next_step(ExitAction::ResetMachine, shared),
                Step::ResetMachine
            );
        }
        assert_eq!(after_interrupts(false), ExitAction::InterruptTaken);
    }
}
