//! One harness, two checkers.
//!
//! Every property of the core is written once with [`proof!`]. Under Kani
//! (`cfg(kani)`) the harness becomes a `#[kani::proof]` whose inputs are
//! symbolic, so the property is proven for all values within the unwinding
//! bound. Under `cargo test` the same body runs as a property test over
//! [`CASES`] inputs drawn from a deterministic generator that is biased
//! towards boundary values (0, 1, all-ones, powers of two, small numbers),
//! so the property is exercised on every CI run even where Kani cannot be
//! installed.
//!
//! Inside a harness, draw inputs with `src.any::<T>()` and discard
//! uninteresting inputs with [`assume!`] (under Kani: `kani::assume`; under
//! test: the case is skipped and does not count as checked).

/// Number of generated cases per property under `cargo test`.
/// Overridable with the `HV_PROP_CASES` environment variable.
pub const CASES: u32 = 4096;

/// Values a harness can draw.
pub trait Arbitrary: Sized {
    fn any(src: &mut Source) -> Self;
}

/// Input source: symbolic under Kani, pseudo-random under test.
pub struct Source {
    #[cfg(not(kani))]
    state: u64,
}

impl Source {
    /// A source for the `case`-th test input (deterministic per case).
    #[cfg(not(kani))]
    pub fn for_case(case: u64) -> Self {
        Source {
            state: case.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03,
        }
    }

    /// The symbolic source used by Kani harnesses.
    #[cfg(kani)]
    pub fn symbolic() -> Self {
        Source {}
    }

    /// Draw a value.
    pub fn any<T: Arbitrary>(&mut self) -> T {
        T::any(self)
    }

    /// Draw a value in `0..bound` (bound > 0). Under Kani: symbolic, assumed < bound.
    pub fn below(&mut self, bound: u64) -> u64 {
        #[cfg(kani)]
        {
            let v: u64 = kani::any();
            kani::assume(v < bound);
            v
        }
        #[cfg(not(kani))]
        {
            if bound == 0 {
                0
            } else {
                self.next_raw() % bound
            }
        }
    }

    #[cfg(not(kani))]
    fn next_raw(&mut self) -> u64 {
        // splitmix64: cheap, good enough to spread inputs.
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A 64-bit value biased towards edge cases, which random bits rarely hit.
    #[cfg(not(kani))]
    fn next_biased(&mut self) -> u64 {
        let r = self.next_raw();
        match r % 8 {
            0 => 0,
            1 => u64::MAX,
            2 => 1u64 << (self.next_raw() % 64),
            3 => self.next_raw() % 64,
            4 => (1u64 << (self.next_raw() % 64)).wrapping_sub(1),
            5 => !(self.next_raw() % 4096),
            _ => self.next_raw(),
        }
    }
}

macro_rules! impl_arbitrary_int {
    ($($t:ty),*) => {$(
        impl Arbitrary for $t {
            fn any(_src: &mut Source) -> Self {
                #[cfg(kani)]
                { kani::any() }
                #[cfg(not(kani))]
                { _src.next_biased() as $t }
            }
        }
    )*};
}
impl_arbitrary_int!(u8, u16, u32, u64, usize, i8, i16, i32, i64);

impl Arbitrary for bool {
    fn any(_src: &mut Source) -> Self {
        #[cfg(kani)]
        {
            kani::any()
        }
        #[cfg(not(kani))]
        {
            _src.next_raw() & 1 == 1
        }
    }
}

#[cfg(not(kani))]
impl<T: Arbitrary, const N: usize> Arbitrary for [T; N] {
    fn any(src: &mut Source) -> Self {
        core::array::from_fn(|_| T::any(src))
    }
}

/// Under Kani a whole array is one symbolic value: no loop to unwind, so a
/// harness can draw a buffer of any length under a small `unwind` bound.
#[cfg(kani)]
impl<T: Arbitrary + kani::Arbitrary, const N: usize> Arbitrary for [T; N] {
    fn any(_src: &mut Source) -> Self {
        kani::any()
    }
}

/// Number of cases to run, from `HV_PROP_CASES` or [`CASES`].
#[cfg(test)]
pub fn case_count() -> u32 {
    std::env::var("HV_PROP_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CASES)
}

/// Discard the current input unless `cond` holds.
#[macro_export]
macro_rules! assume {
    ($cond:expr) => {
        if !$cond {
            #[cfg(kani)]
            kani::assume(false);
            return;
        }
    };
}

/// State that the interesting case `cond` is reachable (non-vacuity).
///
/// Under Kani this is `kani::cover!`: the run reports the cover SATISFIED or
/// UNSATISFIABLE, and an unsatisfiable cover means the harness's assumptions
/// rule the case out. Under `cargo test` each cover that is reached records
/// whether its condition held; the property test fails if a reached cover
/// never held in any case.
#[macro_export]
macro_rules! cover {
    ($cond:expr, $msg:literal) => {{
        #[cfg(kani)]
        kani::cover!($cond, $msg);
        #[cfg(all(test, not(kani)))]
        $crate::verify::record_cover($msg, $cond);
    }};
}

#[cfg(all(test, not(kani)))]
std::thread_local! {
    static COVERS: core::cell::RefCell<std::collections::BTreeMap<&'static str, bool>> =
        const { core::cell::RefCell::new(std::collections::BTreeMap::new()) };
}

/// Test mode of [`cover!`]: remember that `label` was reached, and whether it held.
#[cfg(all(test, not(kani)))]
pub fn record_cover(label: &'static str, held: bool) {
    COVERS.with(|c| *c.borrow_mut().entry(label).or_insert(false) |= held);
}

/// Test mode: start counting covers for one property.
#[cfg(all(test, not(kani)))]
pub fn reset_covers() {
    COVERS.with(|c| c.borrow_mut().clear());
}

/// Test mode: fail if a cover was reached but never held.
#[cfg(all(test, not(kani)))]
pub fn check_covers(property: &str) {
    COVERS.with(|c| {
        let unsatisfied: std::vec::Vec<&str> = c
            .borrow()
            .iter()
            .filter(|(_, held)| !**held)
            .map(|(label, _)| *label)
            .collect();
        assert!(
            unsatisfied.is_empty(),
            "{property}: covers never satisfied in the generated cases: {unsatisfied:?}"
        );
    });
}

/// Declare a property once; get a Kani proof and a property test.
///
/// ```ignore
/// proof! {
///     /// Decoding never yields a register above 31.
///     #[unwind(4)]
///     fn decode_register_in_range(src) {
///         let esr: u64 = src.any();
///         if let Ok(a) = decode(esr) { assert!(a.reg <= 31); }
///     }
/// }
/// ```
///
/// Attributes `#[kani::...]` after `#[unwind(..)]` (a solver, stubs) are
/// passed to the Kani harness only: `#[kani::solver(bin = "cadical")]`.
#[macro_export]
macro_rules! proof {
    ($(#[doc = $doc:literal])* #[unwind($n:literal)] $(#[kani::$($kani_attr:tt)+])* fn $name:ident($src:ident) $body:block) => {
        $(#[doc = $doc])*
        #[cfg(kani)]
        #[kani::proof]
        #[kani::unwind($n)]
        $(#[kani::$($kani_attr)+])*
        #[allow(dead_code)] // called by the Kani driver, not by Rust code
        fn $name() {
            fn property($src: &mut $crate::verify::Source) $body
            property(&mut $crate::verify::Source::symbolic());
        }

        $(#[doc = $doc])*
        #[cfg(all(test, not(kani)))]
        #[test]
        fn $name() {
            fn property($src: &mut $crate::verify::Source) $body
            $crate::verify::reset_covers();
            for case in 0..$crate::verify::case_count() {
                property(&mut $crate::verify::Source::for_case(u64::from(case)));
            }
            $crate::verify::check_covers(stringify!($name));
        }
    };
}
