//! Cycle counts of the phases of the row solves of a half-sweep: where an
//! iteration's time goes, phase by phase, summed over all threads.
//!
//! Wall-clock A/B comparisons on a shared machine cannot resolve changes of
//! a few percent, and a sampling profiler attributes the stalls of one phase
//! to the next one's instructions; a count of the time-stamp counter around
//! each phase is steadier. Compiled in only with the `phase-cycles` feature
//! (`cargo run --release -p embspace-core --features phase-cycles --example
//! wals_phases`); without it every call below is empty, [`enabled`] is false
//! and [`take`] returns zeros. Counting changes no result.
//!
//! The counts are of the time-stamp counter (`rdtsc`, which ticks at a fixed
//! rate whatever the core's clock) on x86_64, and of nanoseconds elsewhere.
//! Each thread sums into its own counters, added to the shared ones once per
//! chunk of rows.

/// A phase of a row's solve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Whitening the fixed factor (once per half-sweep where rows are solved
    /// in its whitened space), with the allocation of its copy.
    Whiten,
    /// Reading the row, checking its entries, choosing its solve.
    Setup,
    /// Gathering the fixed rows into a block (and the right-hand side).
    Gather,
    /// The normal matrix `B^T B` (at k <= 16 with the gather, in one pass).
    Product,
    /// The Cholesky factorisation of the normal matrix.
    Factor,
    /// The triangular solves.
    Solve,
    /// A row solved in the space of its ratings (Woodbury), whole.
    Woodbury,
    /// The first product `A x` of a conjugate-gradient solve.
    CgFirstProduct,
    /// The conjugate-gradient steps.
    CgSteps,
    /// Of the conjugate-gradient products: `G p`.
    CgGramProducts,
    /// Of the conjugate-gradient products: the passes over the gathered block.
    CgBlockPasses,
    /// The row's loss, the check and the store of its factor.
    Loss,
}

/// Every phase, in the order of [`take`].
pub const PHASES: [Phase; 12] = [
    Phase::Whiten,
    Phase::Setup,
    Phase::Gather,
    Phase::Product,
    Phase::Factor,
    Phase::Solve,
    Phase::Woodbury,
    Phase::CgFirstProduct,
    Phase::CgSteps,
    Phase::CgGramProducts,
    Phase::CgBlockPasses,
    Phase::Loss,
];

impl Phase {
    /// Lower-case name with dashes.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Whiten => "whiten",
            Phase::Setup => "setup",
            Phase::Gather => "gather",
            Phase::Product => "product",
            Phase::Factor => "factor",
            Phase::Solve => "solve",
            Phase::Woodbury => "woodbury",
            Phase::CgFirstProduct => "cg-first-product",
            Phase::CgSteps => "cg-steps",
            Phase::CgGramProducts => "cg-gram-products",
            Phase::CgBlockPasses => "cg-block-passes",
            Phase::Loss => "loss",
        }
    }

    /// Whether the phase is part of another one ([`Phase::CgGramProducts`]
    /// and [`Phase::CgBlockPasses`] are inside the conjugate-gradient
    /// products), so that it is not added to the total.
    pub fn nested(self) -> bool {
        matches!(self, Phase::CgGramProducts | Phase::CgBlockPasses)
    }
}

/// Whether this build counts (the `phase-cycles` feature).
pub const fn enabled() -> bool {
    cfg!(feature = "phase-cycles")
}

/// The counts of every phase (in the order of [`PHASES`]) since the last
/// call, summed over all threads; resets them. Zeros without the feature.
pub fn take() -> [(Phase, u64); PHASES.len()] {
    #[cfg(feature = "phase-cycles")]
    {
        let mut out = PHASES.map(|p| (p, 0));
        for (o, c) in out.iter_mut().zip(&imp::TOTAL) {
            o.1 = c.swap(0, std::sync::atomic::Ordering::Relaxed);
        }
        out
    }
    #[cfg(not(feature = "phase-cycles"))]
    PHASES.map(|p| (p, 0))
}

/// A reading of the counter where a phase starts.
#[derive(Clone, Copy)]
pub(crate) struct Stamp(#[allow(dead_code)] u64);

/// The counter now.
#[inline(always)]
pub(crate) fn now() -> Stamp {
    #[cfg(feature = "phase-cycles")]
    {
        Stamp(imp::counter())
    }
    #[cfg(not(feature = "phase-cycles"))]
    Stamp(0)
}

/// Add the time since `from` to `phase` (this thread's counters); returns
/// the counter now, where the next phase starts.
#[inline(always)]
pub(crate) fn lap(phase: Phase, from: Stamp) -> Stamp {
    #[cfg(feature = "phase-cycles")]
    {
        let t = imp::counter();
        imp::LOCAL.with(|l| {
            let c = &l[phase as usize];
            c.set(c.get() + t.wrapping_sub(from.0));
        });
        Stamp(t)
    }
    #[cfg(not(feature = "phase-cycles"))]
    {
        let _ = (phase, from);
        Stamp(0)
    }
}

/// Add this thread's counters to the shared ones.
#[inline(always)]
pub(crate) fn flush() {
    #[cfg(feature = "phase-cycles")]
    imp::LOCAL.with(|l| {
        for (total, c) in imp::TOTAL.iter().zip(l) {
            total.fetch_add(c.replace(0), std::sync::atomic::Ordering::Relaxed);
        }
    });
}

#[cfg(feature = "phase-cycles")]
mod imp {
    use super::PHASES;
    use std::cell::Cell;
    use std::sync::atomic::AtomicU64;

    pub(super) static TOTAL: [AtomicU64; PHASES.len()] =
        [const { AtomicU64::new(0) }; PHASES.len()];

    thread_local! {
        pub(super) static LOCAL: [Cell<u64>; PHASES.len()] =
            const { [const { Cell::new(0) }; PHASES.len()] };
    }

    #[inline(always)]
    pub(super) fn counter() -> u64 {
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: `rdtsc` is part of the x86_64 baseline and reads a
            // counter; it touches no memory.
            unsafe { core::arch::x86_64::_rdtsc() }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            use std::sync::OnceLock;
            use std::time::Instant;
            static START: OnceLock<Instant> = OnceLock::new();
            START.get_or_init(Instant::now).elapsed().as_nanos() as u64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wals::bench::{random_factors, synthetic_ratings};
    use crate::wals::{half_sweep, CsrView, HalfSweepParams, RegScaling, Solver};

    /// The phases a half-sweep with `solver` counts (other tests running at
    /// the same time may add to any of them, never take them away).
    fn counted(solver: Solver) -> Vec<(Phase, u64)> {
        let r = synthetic_ratings(300, 200, 40.0, 100, 5);
        let k = 40; // > 16 with rows shorter than k: every phase of both solvers
        let v = random_factors(r.n_cols, k, 1);
        let mut u = random_factors(r.n_rows, k, 2);
        let p = HalfSweepParams {
            k,
            unobserved_weight: 0.1,
            regularization: 0.05,
            solved_weights: None,
            fixed_weights: None,
            solver,
            reg_scaling: RegScaling::None,
        };
        half_sweep(CsrView::from_csr(&r), &v, &mut u, &p, 2).unwrap();
        take().to_vec()
    }

    #[test]
    fn the_phases_of_each_solver_are_counted_with_the_feature_only() {
        let exact = counted(Solver::Cholesky);
        let cg = counted(Solver::ConjugateGradient { steps: 3 });
        let expect = |counts: &[(Phase, u64)], phases: &[Phase]| {
            for &(p, c) in counts {
                if enabled() && phases.contains(&p) {
                    assert!(c > 0, "{} not counted", p.name());
                } else if !enabled() {
                    assert_eq!(c, 0, "{} counted without the feature", p.name());
                }
            }
        };
        use Phase::*;
        // k = 40 with lambda > 0: both solvers whiten
        let both = [Whiten, Setup, Gather, Loss];
        expect(
            &exact,
            &[&both[..], &[Product, Factor, Solve, Woodbury]].concat(),
        );
        expect(
            &cg,
            &[
                &both[..],
                &[CgFirstProduct, CgSteps, CgGramProducts, CgBlockPasses],
            ]
            .concat(),
        );
        assert_eq!(PHASES.map(|p| p as usize), std::array::from_fn(|i| i));
        let names: std::collections::HashSet<_> = PHASES.iter().map(|p| p.name()).collect();
        assert_eq!(names.len(), PHASES.len());
    }
}
