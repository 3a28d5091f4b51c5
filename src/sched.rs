//! The scheduling decision of one physical CPU that time-shares vCPUs.
//!
//! Each time-shared physical CPU has a run queue of slots, one per vCPU
//! placed on it. A slot is off (not started, or CPU_OFF), runnable, or
//! blocked (the vCPU waits for an interrupt, WFI). The queue charges the
//! running slot the time it ran and always runs the runnable slot that has
//! run least (fair share, as CFS's virtual runtime): a vCPU that wakes from
//! a long sleep is charged up to the least runtime of the others first, so
//! sleeping earns no credit to hog the CPU afterwards. A running vCPU keeps
//! the CPU for at least a slice while another is runnable.
//!
//! The glue owns the vCPU contexts and the timer; it asks [`RunQueue::pick`]
//! at each scheduling point (tick, WFI, wake-up) and switches when the
//! answer differs from the running slot.

/// Most vCPUs one physical CPU can time-share.
pub const MAX_SLOTS: usize = 8;

/// What a slot's vCPU is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SlotState {
    /// No vCPU here (slot unused).
    #[default]
    Empty,
    /// A vCPU is placed here but not started (or turned off).
    Off,
    Runnable,
    /// Waiting for an interrupt (WFI with nothing pending).
    Blocked,
}

/// One physical CPU's run queue. `N` is the slot count (smaller in proofs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunQueue<const N: usize = MAX_SLOTS> {
    state: [SlotState; N],
    /// Time each slot has run, in counter ticks (virtual runtime).
    runtime: [u64; N],
    /// The slot whose vCPU is loaded on the CPU, if any.
    running: Option<usize>,
}

impl<const N: usize> Default for RunQueue<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> RunQueue<N> {
    pub const fn new() -> Self {
        RunQueue {
            state: [SlotState::Empty; N],
            runtime: [0; N],
            running: None,
        }
    }

    /// Place a new vCPU here; its slot, or `None` when the queue is full.
    pub fn add(&mut self) -> Option<usize> {
        let slot = self.state.iter().position(|s| *s == SlotState::Empty)?;
        self.state[slot] = SlotState::Off;
        Some(slot)
    }

    pub fn state(&self, slot: usize) -> SlotState {
        self.state.get(slot).copied().unwrap_or_default()
    }

    pub fn runtime(&self, slot: usize) -> u64 {
        self.runtime.get(slot).copied().unwrap_or(0)
    }

    pub fn running(&self) -> Option<usize> {
        self.running
    }

    /// Slots in use (placed vCPUs, started or not).
    pub fn placed(&self) -> usize {
        self.state
            .iter()
            .filter(|s| **s != SlotState::Empty)
            .count()
    }

    /// The least runtime among runnable slots other than `except`.
    fn least_runtime(&self, except: usize) -> Option<u64> {
        (0..N)
            .filter(|&i| i != except && self.state[i] == SlotState::Runnable)
            .map(|i| self.runtime[i])
            .min()
    }

    /// The vCPU in `slot` can run (started, or woken from WFI). A vCPU that
    /// was not runnable is charged up to the least runtime of the runnable
    /// ones, so its sleep earns it no more than an equal share.
    pub fn make_runnable(&mut self, slot: usize) {
        let Some(state) = self.state.get(slot).copied() else {
            return;
        };
        if state == SlotState::Empty || state == SlotState::Runnable {
            return;
        }
        if let Some(least) = self.least_runtime(slot) {
            self.runtime[slot] = self.runtime[slot].max(least);
        }
        self.state[slot] = SlotState::Runnable;
    }

    /// The vCPU in `slot` waits for an interrupt.
    pub fn block(&mut self, slot: usize) {
        if let Some(state) = self.state.get_mut(slot) {
            if *state != SlotState::Empty {
                *state = SlotState::Blocked;
            }
        }
    }

    /// The vCPU in `slot` is off (CPU_OFF, or its VM stopped).
    pub fn turn_off(&mut self, slot: usize) {
        if let Some(state) = self.state.get_mut(slot) {
            if *state != SlotState::Empty {
                *state = SlotState::Off;
            }
        }
        if self.running == Some(slot) {
            self.running = None;
        }
    }

    /// The running slot ran for `ticks` more.
    pub fn charge(&mut self, ticks: u64) {
        if let Some(slot) = self.running {
            self.runtime[slot] = self.runtime[slot].saturating_add(ticks);
        }
    }

    /// The glue loaded `slot` (or nothing) onto the CPU.
    pub fn set_running(&mut self, slot: Option<usize>) {
        self.running = slot.filter(|&s| s < N);
    }

    /// Which slot should run now: the runnable slot that has run least
    /// (ties: the running one, then the next after it in slot order, so
    /// equals take turns). With `slice_over` false the running slot keeps
    /// the CPU while it is runnable. `None`: nothing can run (idle).
    pub fn pick(&self, slice_over: bool) -> Option<usize> {
        if let Some(running) = self.running {
            if !slice_over && self.state[running] == SlotState::Runnable {
                return Some(running);
            }
        }
        let start = self.running.map_or(0, |r| r + 1);
        let mut best: Option<usize> = None;
        for k in 0..N {
            let i = (start + k) % N;
            if self.state[i] != SlotState::Runnable {
                continue;
            }
            let better = match best {
                None => true,
                Some(b) => self.runtime[i] < self.runtime[b],
            };
            if better {
                best = Some(i);
            }
        }
        // The running slot wins a tie: no switch for nothing.
        if let (Some(b), Some(r)) = (best, self.running) {
            if self.state[r] == SlotState::Runnable && self.runtime[r] <= self.runtime[b] {
                return Some(r);
            }
        }
        best
    }

    /// The runnable slot other than the running one that has run least (the
    /// first after the running one among equals): who gets the CPU when the
    /// running vCPU yields it. `None`: nobody else can run.
    pub fn pick_other(&self) -> Option<usize> {
        let start = self.running.map_or(0, |r| r + 1);
        let mut best: Option<usize> = None;
        for k in 0..N {
            let i = (start + k) % N;
            if Some(i) == self.running || self.state[i] != SlotState::Runnable {
                continue;
            }
            if best.is_none_or(|b| self.runtime[i] < self.runtime[b]) {
                best = Some(i);
            }
        }
        best
    }

    /// Whether a tick is needed: another slot is runnable besides the
    /// running one (then the running one must not keep the CPU for ever).
    pub fn contended(&self) -> bool {
        let others = (0..N)
            .filter(|&i| Some(i) != self.running && self.state[i] == SlotState::Runnable)
            .count();
        others > 0
    }
}

#[cfg(any(test, kani))]
mod proofs {
    use super::*;
    use crate::verify::Source;

    const SLOTS: usize = 3;

    fn any_state(src: &mut Source) -> SlotState {
        match src.below(4) {
            0 => SlotState::Empty,
            1 => SlotState::Off,
            2 => SlotState::Runnable,
            _ => SlotState::Blocked,
        }
    }

    fn any_queue(src: &mut Source) -> RunQueue<SLOTS> {
        let mut q = RunQueue::<SLOTS>::new();
        for i in 0..SLOTS {
            q.state[i] = any_state(src);
            // Runtimes within a bounded window, as they are in the glue
            // (each charge is at most a few slices).
            q.runtime[i] = src.below(1 << 20);
        }
        let running = src.below(SLOTS as u64 + 1) as usize;
        q.running = (running < SLOTS).then_some(running);
        q
    }

    proof! {
        /// The pick is a runnable slot that has run least, `None` exactly when
        /// nothing is runnable, and the running slot keeps the CPU within its
        /// slice while it is runnable.
        #[unwind(4)]
        fn pick_runs_the_least_served_runnable_vcpu(src) {
            let q = any_queue(src);
            let slice_over: bool = src.any();
            let picked = q.pick(slice_over);
            let any_runnable = (0..SLOTS).any(|i| q.state[i] == SlotState::Runnable);
            assert!(picked.is_some() == any_runnable);
            if let Some(p) = picked {
                assert!(q.state[p] == SlotState::Runnable);
                let running_keeps = !slice_over && q.running == Some(p);
                if !running_keeps {
                    for i in 0..SLOTS {
                        if q.state[i] == SlotState::Runnable {
                            assert!(q.runtime[p] <= q.runtime[i]);
                        }
                    }
                }
                cover!(Some(p) != q.running && q.running.is_some(), "a switch to another vCPU");
            }
            if let Some(r) = q.running {
                if !slice_over && q.state[r] == SlotState::Runnable {
                    assert!(picked == Some(r));
                }
            }
            cover!(picked.is_none() && q.placed() > 0, "every vCPU here blocked or off: idle");

            // A yield goes to the least-served runnable vCPU other than the running one.
            let other = q.pick_other();
            let others = (0..SLOTS).any(|i| Some(i) != q.running && q.state[i] == SlotState::Runnable);
            assert!(other.is_some() == others);
            if let Some(o) = other {
                assert!(Some(o) != q.running && q.state[o] == SlotState::Runnable);
                for i in 0..SLOTS {
                    if Some(i) != q.running && q.state[i] == SlotState::Runnable {
                        assert!(q.runtime[o] <= q.runtime[i]);
                    }
                }
                cover!(q.running.is_some_and(|r| q.runtime[r] < q.runtime[o]), "a yield to a vCPU that ran more");
            }
        }
    }

    proof! {
        /// Fair share: with every placed vCPU runnable, running the pick for a
        /// slice at each tick keeps the runtimes within one slice of each
        /// other (one step from any state where they already are). A vCPU that
        /// wakes never starts ahead of the least-served runnable one.
        #[unwind(4)]
        fn runnable_vcpus_stay_within_one_slice(src) {
            let slice: u64 = 1 + src.below(1 << 16);
            let mut q = any_queue(src);
            for i in 0..SLOTS {
                if q.state[i] != SlotState::Empty {
                    q.state[i] = SlotState::Runnable;
                }
            }
            let spread = |q: &RunQueue<SLOTS>| {
                let runnable = (0..SLOTS).filter(|&i| q.state[i] == SlotState::Runnable);
                let max = runnable.clone().map(|i| q.runtime[i]).max().unwrap_or(0);
                let min = runnable.map(|i| q.runtime[i]).min().unwrap_or(0);
                max - min
            };
            assume!(spread(&q) <= slice);
            if let Some(p) = q.pick(true) {
                q.set_running(Some(p));
                q.charge(slice);
                cover!(q.placed() == SLOTS, "three vCPUs share the CPU");
            }
            assert!(spread(&q) <= slice);

            // A wake-up: a blocked slot becomes runnable at or above the least.
            let mut w = any_queue(src);
            let slot = src.below(SLOTS as u64) as usize;
            let least_before = w.least_runtime(slot);
            let was_blocked = w.state[slot] == SlotState::Blocked;
            w.make_runnable(slot);
            if was_blocked {
                assert!(w.state[slot] == SlotState::Runnable);
                if let Some(least) = least_before {
                    assert!(w.runtime[slot] >= least);
                    cover!(w.runtime[slot] == least, "a sleeper is caught up to the others");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A queue of 4 slots with two vCPUs placed, both runnable.
    fn two_runnable() -> (RunQueue<4>, usize, usize) {
        let mut q = RunQueue::<4>::new();
        let a = q.add().unwrap();
        let b = q.add().unwrap();
        q.make_runnable(a);
        q.make_runnable(b);
        (q, a, b)
    }

    #[test]
    fn two_busy_vcpus_alternate_and_get_equal_time() {
        let (mut q, a, b) = two_runnable();
        let mut ran = [0u64; 4];
        for _ in 0..100 {
            let next = q.pick(true).unwrap();
            q.set_running(Some(next));
            q.charge(10);
            ran[next] += 10;
        }
        assert_eq!(ran[a], 500);
        assert_eq!(ran[b], 500);
    }

    #[test]
    fn within_a_slice_the_running_vcpu_keeps_the_cpu() {
        let (mut q, a, b) = two_runnable();
        q.set_running(Some(a));
        q.charge(100);
        assert!(q.contended());
        assert_eq!(q.pick(false), Some(a));
        assert_eq!(q.pick(true), Some(b));
    }

    #[test]
    fn a_blocked_vcpu_gives_way_and_a_sleeper_gets_no_credit() {
        let (mut q, a, b) = two_runnable();
        q.set_running(Some(a));
        q.block(a);
        assert_eq!(q.pick(false), Some(b));
        q.set_running(Some(b));
        q.charge(1_000_000);
        q.make_runnable(a);
        // a slept a long time: it is caught up to b's runtime, not ahead.
        assert_eq!(q.runtime(a), 1_000_000);
        q.block(b);
        assert_eq!(q.pick(false), Some(a));
        q.turn_off(b);
        q.block(a);
        assert_eq!(q.pick(true), None);
        assert_eq!(q.placed(), 2);
    }

    #[test]
    fn a_yield_goes_to_another_vcpu_even_one_that_ran_more() {
        let (mut q, a, b) = two_runnable();
        q.set_running(Some(b));
        q.charge(50);
        q.set_running(Some(a));
        assert_eq!(q.pick(true), Some(a));
        assert_eq!(q.pick_other(), Some(b));
        q.block(b);
        assert_eq!(q.pick_other(), None);
    }

    #[test]
    fn a_full_queue_refuses_more() {
        let mut q = RunQueue::<2>::new();
        assert!(q.add().is_some() && q.add().is_some());
        assert_eq!(q.add(), None);
    }
}
