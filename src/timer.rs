//! The generic timers as the guest sees them.
//!
//! The virtual timer runs on the hardware (its registers are not trapped);
//! the hypervisor only needs to know whether its output is asserted, from
//! CNTV_CTL_EL0. The EL1 physical timer is the hypervisor's
//! (CNTHCTL_EL2.EL1PCEN = 0 traps its registers): it is emulated here, and
//! the glue arms the EL2 physical timer (CNTHP) for its deadline. Both drive
//! level-sensitive PPIs (27 and 30): pending exactly while the output is
//! asserted, i.e. ENABLE = 1, IMASK = 0 and the counter has reached CVAL.

/// CNT*_CTL_EL0.ENABLE.
pub const CTL_ENABLE: u64 = 1 << 0;
/// CNT*_CTL_EL0.IMASK.
pub const CTL_IMASK: u64 = 1 << 1;
/// CNT*_CTL_EL0.ISTATUS (read-only): the timer condition is met.
pub const CTL_ISTATUS: u64 = 1 << 2;

/// Whether a timer whose CTL register reads `ctl` asserts its interrupt.
pub fn ctl_asserts(ctl: u64) -> bool {
    ctl & (CTL_ENABLE | CTL_IMASK | CTL_ISTATUS) == CTL_ENABLE | CTL_ISTATUS
}

/// The guest's EL1 physical timer (CNTP_CTL/CVAL/TVAL_EL0), compared
/// against the physical count CNTPCT_EL0 (`now`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PhysTimer {
    /// ENABLE and IMASK as written.
    ctl: u64,
    cval: u64,
}

impl PhysTimer {
    /// CNTP_CTL_EL0: ENABLE, IMASK, and ISTATUS when enabled and due.
    pub fn ctl(&self, now: u64) -> u64 {
        let due = self.ctl & CTL_ENABLE != 0 && now >= self.cval;
        self.ctl | if due { CTL_ISTATUS } else { 0 }
    }

    pub fn cval(&self) -> u64 {
        self.cval
    }

    /// ENABLE and IMASK as written (what a saved vCPU context keeps).
    pub fn written_ctl(&self) -> u64 {
        self.ctl
    }

    /// CNTP_TVAL_EL0: CVAL - now, 32 bits (bits 63:32 are RES0).
    pub fn tval(&self, now: u64) -> u64 {
        u64::from(self.cval.wrapping_sub(now) as u32)
    }

    pub fn write_ctl(&mut self, value: u64) {
        self.ctl = value & (CTL_ENABLE | CTL_IMASK);
    }

    pub fn write_cval(&mut self, value: u64) {
        self.cval = value;
    }

    /// CNTP_TVAL_EL0 write: CVAL = now + the sign-extended low 32 bits.
    pub fn write_tval(&mut self, now: u64, value: u64) {
        self.cval = now.wrapping_add(value as u32 as i32 as i64 as u64);
    }

    /// Whether the timer asserts PPI 30 at count `now`.
    pub fn output(&self, now: u64) -> bool {
        ctl_asserts(self.ctl(now))
    }

    /// The count at which the output will rise if the guest changes
    /// nothing: the deadline of an enabled, unmasked timer not yet due.
    pub fn next_deadline(&self, now: u64) -> Option<u64> {
        (self.ctl & (CTL_ENABLE | CTL_IMASK) == CTL_ENABLE && now < self.cval).then_some(self.cval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_follows_enable_mask_and_deadline() {
        let mut t = PhysTimer::default();
        t.write_cval(100);
        assert!(!t.output(200), "disabled");
        t.write_ctl(CTL_ENABLE);
        assert!(!t.output(99), "not yet due");
        assert_eq!(t.next_deadline(99), Some(100));
        assert!(t.output(100));
        assert_eq!(t.ctl(100), CTL_ENABLE | CTL_ISTATUS);
        assert_eq!(t.next_deadline(100), None);
        t.write_ctl(CTL_ENABLE | CTL_IMASK | CTL_ISTATUS);
        assert!(!t.output(200), "masked");
        assert_eq!(
            t.ctl(200),
            CTL_ENABLE | CTL_IMASK | CTL_ISTATUS,
            "ISTATUS ignores IMASK"
        );
        assert_eq!(t.next_deadline(50), None, "masked: no deadline");
    }

    #[test]
    fn tval_is_a_signed_32_bit_offset() {
        let mut t = PhysTimer::default();
        t.write_tval(1000, 500);
        assert_eq!(t.cval(), 1500);
        assert_eq!(t.tval(1200), 300);
        assert_eq!(t.tval(1600), u64::from((-100i32) as u32));
        t.write_tval(1000, 0xffff_ffff_ffff_ff00); // -256 in the low 32 bits
        assert_eq!(t.cval(), 1000 - 256);
    }

    #[test]
    fn hardware_ctl_decoding() {
        assert!(ctl_asserts(0b101));
        assert!(!ctl_asserts(0b111));
        assert!(!ctl_asserts(0b001));
        assert!(!ctl_asserts(0b100));
    }
}
