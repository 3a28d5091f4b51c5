//! Emulated MMIO devices and the per-VM map of which IPA range belongs to which.
//!
//! A stage-2 data abort inside one of these ranges is decoded (see
//! [`crate::esr`]) and turned into one call of [`MmioDevice::access`]. The
//! device answers with a value, an acknowledgement, or [`MmioOutcome::Abort`]
//! when the access is architecturally bad (odd width, misaligned, outside its
//! registers); the hypervisor then injects a synchronous external abort.

/// What an emulated device did with one access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmioOutcome {
    /// A load completed with this value (zero-extended to 64 bits).
    Read(u64),
    /// A store completed.
    Written,
    /// The access is not one the device accepts: abort it.
    Abort,
}

/// A trap-and-emulate device.
pub trait MmioDevice {
    /// One access of `size` bytes (1, 2, 4 or 8) at `offset` from the device base.
    fn access(&mut self, offset: u64, size: u8, write: bool, value: u64) -> MmioOutcome;
}

/// Whether `size` is a width a load/store can have and `offset` is aligned to it.
pub fn is_naturally_aligned(offset: u64, size: u8) -> bool {
    matches!(size, 1 | 2 | 4 | 8) && offset.is_multiple_of(u64::from(size))
}

/// The identification value of the [`ScratchDevice`], read-only at offset 0.
pub const SCRATCH_ID: u64 = 0x5343_5241_5443_4831; // "SCRATCH1"
/// Size of the [`ScratchDevice`] register window.
pub const SCRATCH_SIZE: u64 = 0x1000;

/// A test device: a read-only identification register at offset 0 and one
/// 64-bit read/write register at offset 8 whose bytes are individually
/// addressable. It exists so a guest can check that every access width,
/// register, sign extension and direction is decoded and emulated right.
#[derive(Debug, Default, Clone)]
pub struct ScratchDevice {
    value: u64,
}

impl ScratchDevice {
    pub const fn new() -> Self {
        ScratchDevice { value: 0 }
    }

    /// The scratch register's current value.
    pub fn value(&self) -> u64 {
        self.value
    }
}

fn lane_mask(size: u8) -> u64 {
    if size >= 8 {
        u64::MAX
    } else {
        (1u64 << (u32::from(size) * 8)) - 1
    }
}

impl MmioDevice for ScratchDevice {
    fn access(&mut self, offset: u64, size: u8, write: bool, value: u64) -> MmioOutcome {
        if !is_naturally_aligned(offset, size) || offset >= 16 {
            return MmioOutcome::Abort;
        }
        let mask = lane_mask(size);
        if offset < 8 {
            // Identification register: writes are ignored, as for any
            // read-only device register.
            let shift = offset * 8;
            return if write {
                MmioOutcome::Written
            } else {
                MmioOutcome::Read((SCRATCH_ID >> shift) & mask)
            };
        }
        let shift = (offset - 8) * 8;
        if write {
            self.value = (self.value & !(mask << shift)) | ((value & mask) << shift);
            MmioOutcome::Written
        } else {
            MmioOutcome::Read((self.value >> shift) & mask)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_bytes_are_lanes_of_the_register() {
        let mut dev = ScratchDevice::new();
        assert_eq!(
            dev.access(8, 8, true, 0x1122_3344_5566_7788),
            MmioOutcome::Written
        );
        assert_eq!(dev.access(9, 1, false, 0), MmioOutcome::Read(0x77));
        assert_eq!(dev.access(10, 2, true, 0xabcd), MmioOutcome::Written);
        assert_eq!(
            dev.access(8, 8, false, 0),
            MmioOutcome::Read(0x1122_3344_abcd_7788)
        );
        assert_eq!(dev.access(12, 4, false, 0), MmioOutcome::Read(0x1122_3344));
    }

    #[test]
    fn scratch_id_is_read_only() {
        let mut dev = ScratchDevice::new();
        assert_eq!(dev.access(0, 8, true, 0), MmioOutcome::Written);
        assert_eq!(dev.access(0, 8, false, 0), MmioOutcome::Read(SCRATCH_ID));
        assert_eq!(
            dev.access(4, 4, false, 0),
            MmioOutcome::Read(SCRATCH_ID >> 32)
        );
    }

    #[test]
    fn scratch_rejects_bad_accesses() {
        let mut dev = ScratchDevice::new();
        assert_eq!(dev.access(9, 2, false, 0), MmioOutcome::Abort);
        assert_eq!(dev.access(8, 3, false, 0), MmioOutcome::Abort);
        assert_eq!(dev.access(16, 4, false, 0), MmioOutcome::Abort);
        assert_eq!(dev.access(u64::MAX, 1, true, 0), MmioOutcome::Abort);
    }
}

#[cfg(any(test, kani))]
mod proofs {
    use super::*;

    proof! {
        /// A scratch-register write of any width is read back, through the same lanes, unchanged,
        /// and leaves the other bytes of the register as they were.
        #[unwind(4)]
        fn scratch_write_then_read_round_trips(src) {
            let mut dev = ScratchDevice::new();
            let initial: u64 = src.any();
            assert_eq!(dev.access(8, 8, true, initial), MmioOutcome::Written);
            let size = [1u8, 2, 4, 8][src.below(4) as usize];
            let offset = 8 + src.below(8) / u64::from(size) * u64::from(size);
            let value: u64 = src.any();
            assert_eq!(dev.access(offset, size, true, value), MmioOutcome::Written);
            assert_eq!(dev.access(offset, size, false, 0), MmioOutcome::Read(value & lane_mask(size)));
            let lanes = lane_mask(size) << ((offset - 8) * 8);
            assert_eq!(dev.value() & !lanes, initial & !lanes);
            assert_eq!(dev.value() & lanes, (value & lane_mask(size)) << ((offset - 8) * 8));
            crate::cover!(size == 1 && offset == 15, "the top byte written alone");
            crate::cover!(size == 2 && offset == 10 && initial != dev.value(), "a middle halfword changed");
        }
    }

    proof! {
        /// No access, however odd, makes the scratch device panic: it aborts exactly the
        /// accesses of a width other than 1/2/4/8, misaligned, or beyond its two registers;
        /// reads fit the access width, the identification register reads its lanes of
        /// SCRATCH_ID and ignores writes.
        #[unwind(4)]
        fn scratch_never_panics(src) {
            let initial: u64 = src.any();
            let mut dev = ScratchDevice { value: initial };
            // Half the cases inside the window, which random offsets rarely are.
            let offset: u64 = if src.any() { src.below(24) } else { src.any() };
            let size: u8 = if src.any() { src.below(10) as u8 } else { src.any() };
            let write: bool = src.any();
            let outcome = dev.access(offset, size, write, src.any());
            let accepted = matches!(size, 1 | 2 | 4 | 8) && offset.is_multiple_of(u64::from(size.max(1))) && offset < 16;
            assert_eq!(outcome != MmioOutcome::Abort, accepted);
            match outcome {
                MmioOutcome::Read(v) => {
                    assert_eq!(v & !lane_mask(size), 0);
                    if offset < 8 {
                        assert_eq!(v, (SCRATCH_ID >> (offset * 8)) & lane_mask(size));
                    }
                    crate::cover!(offset > 0 && offset < 8, "a lane of the ID above its low byte read");
                }
                MmioOutcome::Written => {
                    assert!(write);
                    if offset < 8 {
                        assert_eq!(dev.value(), initial);
                    }
                    crate::cover!(offset < 8, "a write to the ID register ignored");
                }
                MmioOutcome::Abort => {
                    crate::cover!(matches!(size, 1 | 2 | 4 | 8) && offset == 16, "an aligned access just past the registers aborted");
                    crate::cover!(size == 4 && offset == 10, "a misaligned access aborted");
                    crate::cover!(size == 3, "an impossible width aborted");
                }
            }
        }
    }
}
