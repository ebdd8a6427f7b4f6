//! Where a WALS iteration's time goes: the cycles of each phase of the row
//! solves (`embspace_core::wals::phases`), for the users and the items
//! half-sweep, on a synthetic ratings matrix shaped like ML-20M.
//!
//! ```text
//! cargo run --release -p embspace-core --features phase-cycles \
//!     --example wals_phases -- [K] [SOLVER] [THREADS] [SCALE]
//! ```
//!
//! `K` factors (64), `SOLVER` `cholesky` or `cg` (3 steps), `THREADS` (2),
//! `SCALE` the fraction of ML-20M's 138,493 users and 26,744 items (1.0).
//! One iteration warms up; the next two are counted, with the loss a fit
//! records (`half_sweep_run` with `LossDetail::Total`). The counts are of the
//! time-stamp counter (cycles at a fixed rate, whatever the cores' clock),
//! summed over all threads; the nested conjugate-gradient phases are parts
//! of the ones above them and not added to the total.

use embspace_core::parallel::Cancel;
use embspace_core::wals::bench::{random_factors, synthetic_ratings};
use embspace_core::wals::phases;
use embspace_core::wals::{
    half_sweep_run, CsrView, HalfSweepParams, LossDetail, RegScaling, Solver, SweepReturns,
};
use std::time::Instant;

fn arg<T: std::str::FromStr>(i: usize, default: T) -> T {
    std::env::args()
        .nth(i)
        .map(|a| {
            a.parse()
                .unwrap_or_else(|_| panic!("bad argument {i}: {a:?}"))
        })
        .unwrap_or(default)
}

fn main() {
    let k: usize = arg(1, 64);
    let solver_name: String = arg(2, "cholesky".to_string());
    let threads: usize = arg(3, 2);
    let scale: f64 = arg(4, 1.0);
    let solver = Solver::parse(&solver_name, 3).expect("solver");
    let (n_users, n_items) = (
        (138_493.0 * scale) as usize,
        ((26_744.0 * scale) as usize).max(100),
    );
    let t0 = Instant::now();
    // about 144 ratings a user and at most 3,000, as in ML-20M (whose most
    // active user has 9,254)
    let by_user = synthetic_ratings(n_users, n_items, 124.0, 3_000.min(n_items / 4), 1);
    let by_item = by_user.transpose();
    println!(
        "{} users x {} items, {} ratings, generated in {:.1} s; k = {k}, {solver_name}, \
         {threads} threads",
        by_user.n_rows,
        by_user.n_cols,
        by_user.nnz(),
        t0.elapsed().as_secs_f64()
    );
    // column weights falling slowly with popularity, as the benches use
    let col_weights: Vec<f32> = (0..by_item.n_rows)
        .map(|j| (by_item.row(j).0.len().max(1) as f32).powf(-0.08))
        .collect();
    // on cache lines, as embspace's Python backend allocates its factors
    let (mut u_buf, u_at) = line_aligned(&random_factors(n_users, k, 2));
    let (mut v_buf, v_at) = line_aligned(&random_factors(n_items, k, 3));
    let u = &mut u_buf[u_at..u_at + n_users * k];
    let v = &mut v_buf[v_at..v_at + n_items * k];
    let users = HalfSweepParams {
        k,
        unobserved_weight: 0.01,
        regularization: 0.07,
        solved_weights: None,
        fixed_weights: Some(&col_weights),
        solver,
        reg_scaling: RegScaling::None,
    };
    let items = HalfSweepParams {
        solved_weights: Some(&col_weights),
        fixed_weights: None,
        ..users
    };
    let mut sums = [[0u64; phases::PHASES.len()]; 2];
    let mut walls = [0.0f64; 2];
    for iteration in 0..3 {
        for (side, sum) in sums.iter_mut().enumerate() {
            let t = Instant::now();
            // the loss a fit records: from the normal equations
            let cancel = Cancel::new();
            let returns = SweepReturns {
                start_loss: false,
                detail: LossDetail::Total,
            };
            if side == 0 {
                let csr = CsrView::from_csr(&by_user);
                half_sweep_run(csr, v, u, &users, threads, returns, &cancel)
            } else {
                let csr = CsrView::from_csr(&by_item);
                half_sweep_run(csr, u, v, &items, threads, returns, &cancel)
            }
            .expect("half-sweep");
            let counts = phases::take();
            if iteration > 0 {
                walls[side] += t.elapsed().as_secs_f64();
                for (s, (_, c)) in sum.iter_mut().zip(counts) {
                    *s += c;
                }
            }
        }
    }
    println!(
        "\n{:<28} {:>12} {:>7} {:>12} {:>7}",
        "phase", "users Mcyc", "share", "items Mcyc", "share"
    );
    let totals = sums.map(|s| {
        phases::PHASES
            .iter()
            .zip(s)
            .filter(|(p, _)| !p.nested())
            .map(|(_, c)| c)
            .sum::<u64>()
            .max(1)
    });
    for (i, p) in phases::PHASES.iter().enumerate() {
        let name = if p.nested() {
            format!("  of which {}", p.name())
        } else {
            p.name().to_string()
        };
        let cell = |side: usize| {
            let c = sums[side][i] / 2;
            (c as f64 / 1e6, 100.0 * c as f64 / (totals[side] / 2) as f64)
        };
        let ((a, sa), (b, sb)) = (cell(0), cell(1));
        if a + b > 0.0 {
            println!("{name:<28} {a:>12.0} {sa:>6.1}% {b:>12.0} {sb:>6.1}%");
        }
    }
    println!(
        "{:<28} {:>12.0} {:>7} {:>12.0}\nwall s per half-sweep: users {:.3}, items {:.3}",
        "total",
        totals[0] as f64 / 2e6,
        "",
        totals[1] as f64 / 2e6,
        walls[0] / 2.0,
        walls[1] / 2.0
    );
}

/// `x` copied into a buffer where it starts on a 64-byte line: `(buffer,
/// offset of x in it)`.
fn line_aligned(x: &[f32]) -> (Vec<f32>, usize) {
    let mut buf = vec![0.0f32; x.len() + 16];
    let at = (64 - buf.as_ptr() as usize % 64) % 64 / 4;
    buf[at..at + x.len()].copy_from_slice(x);
    (buf, at)
}
