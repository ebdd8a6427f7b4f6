//! Tests of the WALS half-sweep against a naive `f64` reference.

use super::*;
use crate::csr::Duplicates;
use crate::dense::{cholesky_solve, cholesky_upper, solve_spd, Unfused};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// A random sparse ratings matrix with values in 1..=5 (density `p`), with
/// the rows in `empty_rows` and columns in `empty_cols` left empty.
fn ratings(
    n: usize,
    m: usize,
    p: f64,
    seed: u64,
    empty_rows: &[usize],
    empty_cols: &[usize],
) -> Csr {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut r, mut c, mut v) = (vec![], vec![], vec![]);
    for i in 0..n {
        for j in 0..m {
            if empty_rows.contains(&i) || empty_cols.contains(&j) {
                continue;
            }
            if rng.random_bool(p) {
                r.push(i as i64);
                c.push(j as i64);
                v.push(rng.random_range(1..=5) as f32);
            }
        }
    }
    Csr::from_coo(n, m, &r, &c, &v, Duplicates::Error, 0).unwrap()
}

fn normal(n: usize, scale: f32, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let z: f64 = StandardNormal.sample(&mut rng);
            scale * z as f32
        })
        .collect()
}

fn weights(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(0.1..3.0)).collect()
}

/// The exact minimiser of every row's system, in f64.
fn reference_sweep(r: &Csr, fixed: &[f32], k: usize, p: &HalfSweepParams<'_>) -> Vec<f64> {
    let m = r.n_cols;
    let mut g = vec![0.0; k * k];
    for j in 0..m {
        for a in 0..k {
            for b in 0..k {
                g[a * k + b] += fixed[j * k + a] as f64 * fixed[j * k + b] as f64;
            }
        }
    }
    let mut out = vec![0.0; r.n_rows * k];
    for i in 0..r.n_rows {
        let (idx, vals) = r.row(i);
        if idx.is_empty() {
            continue;
        }
        let si = p.solved_weights.map_or(1.0, |s| s[i] as f64);
        let lam = match p.reg_scaling {
            RegScaling::None => p.regularization,
            RegScaling::Count => p.regularization * idx.len() as f64,
        };
        let mut a: Vec<f64> = g.iter().map(|x| x * p.unobserved_weight).collect();
        let mut b = vec![0.0; k];
        for (&j, &v) in idx.iter().zip(vals) {
            let j = j as usize;
            let w = si * p.fixed_weights.map_or(1.0, |f| f[j] as f64);
            for x in 0..k {
                let vx = fixed[j * k + x] as f64;
                b[x] += (p.unobserved_weight + w) * v as f64 * vx;
                for y in 0..k {
                    a[x * k + y] += w * vx * fixed[j * k + y] as f64;
                }
            }
        }
        for d in 0..k {
            a[d * k + d] += lam;
        }
        let x = solve_spd(&a, k, &b).unwrap();
        out[i * k..i * k + k].copy_from_slice(&x);
    }
    out
}

/// The loss, by its definition (dense sum over every cell), in f64.
fn reference_loss(r: &Csr, u: &[f32], v: &[f32], k: usize, p: &LossParams<'_>) -> f64 {
    let t = r.transpose();
    let mut total = 0.0;
    for i in 0..r.n_rows {
        let (idx, vals) = r.row(i);
        for j in 0..r.n_cols {
            let pred: f64 = (0..k)
                .map(|a| u[i * k + a] as f64 * v[j * k + a] as f64)
                .sum();
            match idx.iter().position(|&c| c as usize == j) {
                Some(pos) => {
                    let w = p.unobserved_weight
                        + p.row_weights.map_or(1.0, |w| w[i] as f64)
                            * p.col_weights.map_or(1.0, |w| w[j] as f64);
                    total += w * (vals[pos] as f64 - pred).powi(2);
                }
                None => total += p.unobserved_weight * pred * pred,
            }
        }
    }
    let count = p.reg_scaling == RegScaling::Count;
    let sq = |x: &[f32], i: usize| -> f64 {
        x[i * k..i * k + k]
            .iter()
            .map(|&a| (a as f64).powi(2))
            .sum::<f64>()
    };
    let reg_u: f64 = (0..r.n_rows)
        .map(|i| sq(u, i) * if count { r.row(i).0.len() as f64 } else { 1.0 })
        .sum();
    let reg_v: f64 = (0..r.n_cols)
        .map(|j| sq(v, j) * if count { t.row(j).0.len() as f64 } else { 1.0 })
        .sum();
    total + p.regularization * (reg_u + reg_v)
}

fn isas() -> Vec<Isa> {
    [Isa::Avx512, Isa::Avx2, Isa::Portable]
        .into_iter()
        .filter(|i| i.available())
        .collect()
}

fn max_rel_err(got: &[f32], want: &[f64]) -> f64 {
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-12);
    got.iter()
        .zip(want)
        .map(|(g, w)| (*g as f64 - w).abs() / scale)
        .fold(0.0, f64::max)
}

#[test]
fn half_sweep_matches_reference_for_every_option() {
    let (n, m) = (40, 23);
    let r = ratings(n, m, 0.3, 1, &[5], &[7]);
    let rw = weights(n, 2);
    let cw = weights(m, 3);
    for k in [1, 3, 10, 16, 20] {
        let fixed = normal(m * k, 0.5, 10 + k as u64);
        for (solved_w, fixed_w) in [
            (None, None),
            (Some(&rw[..]), Some(&cw[..])),
            (None, Some(&cw[..])),
        ] {
            for scaling in [RegScaling::None, RegScaling::Count] {
                for (w0, lam) in [(0.01, 0.07), (0.0, 0.1), (2.0, 0.5), (0.3, 0.0)] {
                    if lam == 0.0 && k > 10 {
                        // 23 fixed rows in more than 10 dimensions without
                        // regularisation: condition numbers beyond 1e4, where
                        // f32 accumulation limits agreement to about 1e-4.
                        continue;
                    }
                    let p = HalfSweepParams {
                        k,
                        unobserved_weight: w0,
                        regularization: lam,
                        solved_weights: solved_w,
                        fixed_weights: fixed_w,
                        solver: Solver::Cholesky,
                        reg_scaling: scaling,
                    };
                    let want = reference_sweep(&r, &fixed, k, &p);
                    for isa in isas() {
                        let mut got = vec![f32::NAN; n * k];
                        let loss =
                            half_sweep_with(CsrView::from_csr(&r), &fixed, &mut got, &p, 2, isa)
                                .unwrap();
                        let err = max_rel_err(&got, &want);
                        assert!(
                            err < 2e-5,
                            "k={k} w0={w0} lam={lam} {scaling:?} {isa:?}: {err}"
                        );
                        assert!(got[5 * k..6 * k].iter().all(|&v| v == 0.0), "empty row");
                        // the returned loss is the loss at the new point
                        let lp = LossParams {
                            k,
                            unobserved_weight: w0,
                            regularization: lam,
                            row_weights: solved_w,
                            col_weights: fixed_w,
                            reg_scaling: scaling,
                        };
                        let exact = reference_loss(&r, &got, &fixed, k, &lp);
                        assert!(
                            (loss.total() - exact).abs() < 1e-7 * exact.max(1.0),
                            "k={k} w0={w0} lam={lam} {scaling:?} {isa:?} {solved_w:?}: {loss:?} vs {exact}"
                        );
                        let again =
                            super::loss(CsrView::from_csr(&r), &got, &fixed, &lp, 1).unwrap();
                        assert!((again.total() - exact).abs() < 1e-7 * exact.max(1.0));
                    }
                }
            }
        }
    }
}

#[test]
fn larger_k_uses_every_tile_shape() {
    // k = 40, 64, 100, 128 exercise 8 x {1,2,3} tiles; rows longer than one block.
    let (n, m) = (12, 700);
    let r = ratings(n, m, 0.9, 4, &[], &[]);
    for k in [40, 64, 100, 128] {
        let fixed = normal(m * k, 0.2, k as u64);
        let cw = weights(m, 5);
        let p = HalfSweepParams {
            k,
            unobserved_weight: 0.05,
            regularization: 0.07,
            solved_weights: None,
            fixed_weights: Some(&cw),
            solver: Solver::Cholesky,
            reg_scaling: RegScaling::None,
        };
        let want = reference_sweep(&r, &fixed, k, &p);
        for isa in isas() {
            let mut got = vec![0.0f32; n * k];
            half_sweep_with(CsrView::from_csr(&r), &fixed, &mut got, &p, 2, isa).unwrap();
            let err = max_rel_err(&got, &want);
            assert!(err < 2e-5, "k={k} {isa:?}: {err}");
        }
    }
}

#[test]
fn bit_identical_for_any_thread_count() {
    let (n, m) = (300, 120);
    let r = ratings(n, m, 0.2, 6, &[], &[]);
    let t = r.transpose();
    for solver in [Solver::Cholesky, Solver::ConjugateGradient { steps: 3 }] {
        let k = 24;
        let mut runs = vec![];
        for threads in [1, 2, 4] {
            let mut u = normal(n * k, 0.3, 1);
            let mut v = normal(m * k, 0.3, 2);
            let mut losses = vec![];
            for _ in 0..3 {
                let p = HalfSweepParams {
                    k,
                    unobserved_weight: 0.1,
                    regularization: 0.07,
                    solved_weights: None,
                    fixed_weights: None,
                    solver,
                    reg_scaling: RegScaling::None,
                };
                losses.push(half_sweep(CsrView::from_csr(&r), &v, &mut u, &p, threads).unwrap());
                losses.push(half_sweep(CsrView::from_csr(&t), &u, &mut v, &p, threads).unwrap());
            }
            runs.push((u, v, losses));
        }
        for run in &runs[1..] {
            assert_eq!(run.0, runs[0].0);
            assert_eq!(run.1, runs[0].1);
            assert_eq!(run.2, runs[0].2);
        }
    }
}

#[test]
fn half_sweep_from_adds_the_loss_of_the_starting_point() {
    // Rows longer than one block (k > 16) and one beyond the whole-row limit
    // are not needed here: both loss paths are the ones `half_sweep` uses.
    let (n, m) = (60, 35);
    let r = ratings(n, m, 0.3, 11, &[4], &[9]);
    let rw = weights(n, 12);
    let cw = weights(m, 13);
    for k in [3, 10, 20, 40] {
        let fixed = normal(m * k, 0.4, 20 + k as u64);
        let start = normal(n * k, 0.4, 30 + k as u64);
        for solver in [Solver::Cholesky, Solver::ConjugateGradient { steps: 2 }] {
            for scaling in [RegScaling::None, RegScaling::Count] {
                let p = HalfSweepParams {
                    k,
                    unobserved_weight: 0.2,
                    regularization: 0.07,
                    solved_weights: Some(&rw),
                    fixed_weights: Some(&cw),
                    solver,
                    reg_scaling: scaling,
                };
                let lp = LossParams {
                    k,
                    unobserved_weight: 0.2,
                    regularization: 0.07,
                    row_weights: Some(&rw),
                    col_weights: Some(&cw),
                    reg_scaling: scaling,
                };
                let exact = reference_loss(&r, &start, &fixed, k, &lp);
                let mut plain = start.clone();
                let alone = half_sweep(CsrView::from_csr(&r), &fixed, &mut plain, &p, 2).unwrap();
                let mut runs = vec![];
                for threads in [1, 2, 3] {
                    let mut got = start.clone();
                    let (before, after) =
                        half_sweep_from(CsrView::from_csr(&r), &fixed, &mut got, &p, threads)
                            .unwrap();
                    // the loss of the starting point (the empty row included) ...
                    assert!(
                        (before.total() - exact).abs() < 1e-6 * exact,
                        "k={k} {solver:?} {scaling:?}: {before:?} vs {exact}"
                    );
                    // ... and the half-sweep itself, unchanged
                    assert_eq!(got, plain);
                    assert_eq!(after, alone);
                    runs.push((before, after));
                }
                assert!(runs.iter().all(|r| *r == runs[0]), "thread independence");
            }
        }
    }
    // a non-finite starting factor is refused with either solver
    let (k, mut bad) = (3, normal(n * 3, 0.4, 1));
    bad[7] = f32::NAN;
    let fixed = normal(m * k, 0.4, 2);
    let p = HalfSweepParams {
        k,
        unobserved_weight: 0.2,
        regularization: 0.07,
        solved_weights: None,
        fixed_weights: None,
        solver: Solver::Cholesky,
        reg_scaling: RegScaling::None,
    };
    assert!(matches!(
        half_sweep_from(CsrView::from_csr(&r), &fixed, &mut bad, &p, 1),
        Err(Error::NonFinite(_))
    ));
}

#[test]
fn a_raised_token_stops_the_half_sweep_and_the_loss() {
    let (n, m, k) = (200, 90, 12);
    let r = ratings(n, m, 0.2, 9, &[], &[]);
    let v = normal(m * k, 0.3, 3);
    let quiet = Cancel::new();
    let raised = Cancel::new();
    raised.cancel();
    for solver in [Solver::Cholesky, Solver::ConjugateGradient { steps: 2 }] {
        let p = HalfSweepParams {
            k,
            unobserved_weight: 0.1,
            regularization: 0.07,
            solved_weights: None,
            fixed_weights: None,
            solver,
            reg_scaling: RegScaling::None,
        };
        let start = normal(n * k, 0.3, 4);
        let mut want = start.clone();
        let want_loss = half_sweep(CsrView::from_csr(&r), &v, &mut want, &p, 2).unwrap();
        let mut from = start.clone();
        let (want_before, _) =
            half_sweep_from(CsrView::from_csr(&r), &v, &mut from, &p, 2).unwrap();
        // every choice of returns: the same factors, the losses asked for
        for start_loss in [false, true] {
            for detail in [LossDetail::Terms, LossDetail::Total] {
                let returns = SweepReturns { start_loss, detail };
                let mut got = start.clone();
                let view = CsrView::from_csr(&r);
                let (before, after) = half_sweep_run(view, &v, &mut got, &p, 3, returns, &quiet)
                    .unwrap()
                    .expect("not cancelled");
                assert_eq!(got, want);
                let close = |got: f64, want: f64| (got - want).abs() <= 1e-6 * want;
                match (detail, after) {
                    (LossDetail::Terms, SweepLoss::Terms(l)) => assert_eq!(l, want_loss),
                    (LossDetail::Total, SweepLoss::Total(t)) => {
                        assert!(close(t, want_loss.total()), "{t} {want_loss:?}")
                    }
                    other => panic!("asked for {detail:?}, got {other:?}"),
                }
                match (start_loss, detail, before) {
                    (false, _, None) => {}
                    (true, LossDetail::Terms, Some(SweepLoss::Terms(l))) => {
                        assert_eq!(l, want_before)
                    }
                    (true, LossDetail::Total, Some(SweepLoss::Total(t))) => {
                        assert!(close(t, want_before.total()), "{t} {want_before:?}")
                    }
                    other => panic!("asked for {start_loss} {detail:?}, got {other:?}"),
                }
                let mut stopped = start.clone();
                let view = CsrView::from_csr(&r);
                let none = half_sweep_run(view, &v, &mut stopped, &p, 2, returns, &raised);
                assert_eq!(none.unwrap(), None);
            }
        }

        let lp = LossParams {
            k,
            unobserved_weight: 0.1,
            regularization: 0.07,
            row_weights: None,
            col_weights: None,
            reg_scaling: RegScaling::None,
        };
        let full = loss(CsrView::from_csr(&r), &want, &v, &lp, 2).unwrap();
        let quiet_loss =
            loss_cancellable(CsrView::from_csr(&r), &want, &v, &lp, 1, &quiet).unwrap();
        assert_eq!(quiet_loss, Some(full));
        let none = loss_cancellable(CsrView::from_csr(&r), &want, &v, &lp, 2, &raised);
        assert_eq!(none.unwrap(), None);
    }
}

#[test]
fn loss_never_increases_and_cg_approaches_cholesky() {
    let (n, m) = (80, 60);
    let r = ratings(n, m, 0.25, 8, &[3], &[4]);
    let t = r.transpose();
    let k = 8;
    let cw: Vec<f32> = (0..m)
        .map(|j| ((t.row(j).0.len().max(1)) as f32).powf(-0.08))
        .collect();
    for solver in [Solver::Cholesky, Solver::ConjugateGradient { steps: 2 }] {
        let mut u = normal(n * k, 1.0, 3);
        let mut v = normal(m * k, 1.0, 4);
        let p_rows = HalfSweepParams {
            k,
            unobserved_weight: 0.1,
            regularization: 0.07,
            solved_weights: None,
            fixed_weights: Some(&cw),
            solver,
            reg_scaling: RegScaling::None,
        };
        let p_cols = HalfSweepParams {
            solved_weights: Some(&cw),
            fixed_weights: None,
            ..p_rows
        };
        let lp = LossParams {
            k,
            unobserved_weight: 0.1,
            regularization: 0.07,
            row_weights: None,
            col_weights: Some(&cw),
            reg_scaling: RegScaling::None,
        };
        let mut last = loss(CsrView::from_csr(&r), &u, &v, &lp, 1).unwrap().total();
        for _ in 0..15 {
            let a = half_sweep(CsrView::from_csr(&r), &v, &mut u, &p_rows, 2)
                .unwrap()
                .total();
            assert!(a <= last * (1.0 + 1e-12), "{solver:?}: {a} > {last}");
            let b = half_sweep(CsrView::from_csr(&t), &u, &mut v, &p_cols, 2)
                .unwrap()
                .total();
            assert!(b <= a * (1.0 + 1e-12), "{solver:?}: {b} > {a}");
            last = b;
        }
    }
}

#[test]
fn precision_on_an_ill_conditioned_row() {
    // One row with 5000 ratings and fixed factors whose columns span four
    // orders of magnitude: the normal matrix has a condition number near 1e8.
    // f32 accumulation in blocks with f64 block sums and an f64 Cholesky keep
    // the solution within 1e-5 of the f64 reference.
    let (m, k) = (5000, 32);
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut fixed = normal(m * k, 1.0, 12);
    for j in 0..m {
        for a in 0..k {
            fixed[j * k + a] *= 10f32.powf(-2.0 + 4.0 * a as f32 / (k - 1) as f32);
        }
    }
    let vals: Vec<f32> = (0..m).map(|_| rng.random_range(1..=5) as f32).collect();
    let cols: Vec<i64> = (0..m as i64).collect();
    let r = Csr::from_coo(1, m, &vec![0; m], &cols, &vals, Duplicates::Error, 0).unwrap();
    let p = HalfSweepParams {
        k,
        unobserved_weight: 0.0,
        regularization: 1e-3,
        solved_weights: None,
        fixed_weights: None,
        solver: Solver::Cholesky,
        reg_scaling: RegScaling::None,
    };
    let want = reference_sweep(&r, &fixed, k, &p);
    for isa in isas() {
        let mut got = vec![0.0f32; k];
        half_sweep_with(CsrView::from_csr(&r), &fixed, &mut got, &p, 1, isa).unwrap();
        let err = max_rel_err(&got, &want);
        assert!(err < 1e-5, "{isa:?}: {err}");
    }
}

#[test]
fn edge_cases() {
    let (n, m) = (10, 6);
    let r = ratings(n, m, 0.6, 9, &[2], &[1]);
    let k = 3;
    let fixed = normal(m * k, 1.0, 1);
    let base = HalfSweepParams {
        k,
        unobserved_weight: 0.0,
        regularization: 0.0,
        solved_weights: None,
        fixed_weights: None,
        solver: Solver::Cholesky,
        reg_scaling: RegScaling::None,
    };
    // w0 = 0 and lambda = 0: the empty row is 0, the full-rank rows are the
    // unregularised least-squares solutions; a row with fewer ratings than
    // factors is singular.
    let dense = ratings(n, m, 1.0, 9, &[2], &[]);
    let want = reference_sweep(&dense, &fixed, k, &base);
    let mut got = vec![1.0f32; n * k];
    half_sweep(CsrView::from_csr(&dense), &fixed, &mut got, &base, 1).unwrap();
    assert!(max_rel_err(&got, &want) < 1e-5);
    assert!(got[2 * k..3 * k].iter().all(|&v| v == 0.0));
    let one = Csr::from_coo(1, m, &[0], &[0], &[3.0], Duplicates::Error, 0).unwrap();
    let mut u = vec![0.0f32; k];
    let err = half_sweep(CsrView::from_csr(&one), &fixed, &mut u, &base, 1).unwrap_err();
    assert!(
        matches!(err, Error::Numerical(ref s) if s.contains("row 0")),
        "{err}"
    );
    // CG on the same singular system: the same typed error (a row with
    // fewer ratings than factors and w0 = 0 cannot be solved)
    let cg = HalfSweepParams {
        solver: Solver::ConjugateGradient { steps: 5 },
        ..base
    };
    let mut u = vec![0.5f32; k];
    let err = half_sweep(CsrView::from_csr(&one), &fixed, &mut u, &cg, 1).unwrap_err();
    assert!(
        matches!(err, Error::Numerical(ref s) if s.contains("row 0") && s.contains("singular")),
        "{err}"
    );
    // ... while the full-rank rows of the same problem solve as with Cholesky
    let mut got = vec![1.0f32; n * k];
    let cg_long = HalfSweepParams {
        solver: Solver::ConjugateGradient { steps: 4 * k },
        ..base
    };
    half_sweep(CsrView::from_csr(&dense), &fixed, &mut got, &cg_long, 1).unwrap();
    let want = reference_sweep(&dense, &fixed, k, &base);
    assert!(max_rel_err(&got, &want) < 1e-4);
    // a large w0 still solves exactly
    let big = HalfSweepParams {
        unobserved_weight: 1e3,
        regularization: 0.07,
        ..base
    };
    let want = reference_sweep(&r, &fixed, k, &big);
    half_sweep(CsrView::from_csr(&r), &fixed, &mut got, &big, 1).unwrap();
    assert!(max_rel_err(&got, &want) < 1e-5);
}

#[test]
fn bad_input_is_a_typed_error() {
    let r = ratings(5, 4, 0.8, 1, &[], &[]);
    let k = 2;
    let fixed = normal(4 * k, 1.0, 1);
    let mut u = vec![0.0f32; 5 * k];
    let p = HalfSweepParams {
        k,
        unobserved_weight: 0.1,
        regularization: 0.1,
        solved_weights: None,
        fixed_weights: None,
        solver: Solver::Cholesky,
        reg_scaling: RegScaling::None,
    };
    let view = CsrView::from_csr(&r);
    let run =
        |p: &HalfSweepParams<'_>, fixed: &[f32], u: &mut [f32]| half_sweep(view, fixed, u, p, 1);
    let nan = [f32::NAN; 4];
    let neg = [1.0, -1.0, 1.0, 1.0];
    assert!(matches!(
        run(
            &HalfSweepParams {
                fixed_weights: Some(&nan),
                ..p
            },
            &fixed,
            &mut u
        ),
        Err(Error::NonFinite(_))
    ));
    assert!(matches!(
        run(
            &HalfSweepParams {
                fixed_weights: Some(&neg),
                ..p
            },
            &fixed,
            &mut u
        ),
        Err(Error::InvalidParameter(_))
    ));
    assert!(matches!(
        run(
            &HalfSweepParams {
                solved_weights: Some(&neg),
                ..p
            },
            &fixed,
            &mut u
        ),
        Err(Error::ShapeMismatch(_))
    ));
    assert!(matches!(
        run(
            &HalfSweepParams {
                unobserved_weight: -1.0,
                ..p
            },
            &fixed,
            &mut u
        ),
        Err(Error::InvalidParameter(_))
    ));
    assert!(matches!(
        run(
            &HalfSweepParams {
                regularization: f64::NAN,
                ..p
            },
            &fixed,
            &mut u
        ),
        Err(Error::NonFinite(_))
    ));
    assert!(matches!(
        run(&HalfSweepParams { k: 0, ..p }, &fixed, &mut u),
        Err(Error::InvalidParameter(_))
    ));
    assert!(matches!(
        run(
            &HalfSweepParams {
                solver: Solver::ConjugateGradient { steps: 0 },
                ..p
            },
            &fixed,
            &mut u
        ),
        Err(Error::InvalidParameter(_))
    ));
    assert!(matches!(
        run(&p, &fixed[1..], &mut u),
        Err(Error::ShapeMismatch(_))
    ));
    let mut bad_fixed = fixed.clone();
    bad_fixed[3] = f32::INFINITY;
    assert!(matches!(
        run(&p, &bad_fixed, &mut u),
        Err(Error::NonFinite(_))
    ));
    // out-of-range column and NaN rating in a hand-built view
    let indices = [0, 9];
    let data = [1.0, 2.0];
    let v = CsrView::new(1, 4, &[0, 2], &indices, &data).unwrap();
    let mut u1 = vec![0.0f32; k];
    assert!(matches!(
        half_sweep(v, &fixed, &mut u1, &p, 1),
        Err(Error::IndexOutOfRange(_))
    ));
    let data = [1.0, f32::NAN];
    let indices = [0, 1];
    let v = CsrView::new(1, 4, &[0, 2], &indices, &data).unwrap();
    assert!(matches!(
        half_sweep(v, &fixed, &mut u1, &p, 1),
        Err(Error::NonFinite(_))
    ));
    assert!(CsrView::new(1, 4, &[0, 3], &indices, &data).is_err());
    assert!(CsrView::new(2, 4, &[0, 2, 1], &indices, &data).is_err());
    assert!(matches!(
        Solver::parse("lu", 1),
        Err(Error::InvalidParameter(_))
    ));
    assert!(matches!(
        RegScaling::parse("log"),
        Err(Error::InvalidParameter(_))
    ));
    assert_eq!(
        Solver::parse("cg", 3).unwrap(),
        Solver::ConjugateGradient { steps: 3 }
    );
}

#[test]
fn gramian_matches_naive_and_is_thread_independent() {
    for k in [1, 7, 16, 33] {
        let n = 3000;
        let x = normal(n * k, 1.0, k as u64);
        let g1 = gramian(&x, k, 1).unwrap();
        let g3 = gramian(&x, k, 3).unwrap();
        assert_eq!(g1, g3);
        for a in 0..k {
            for b in 0..k {
                let want: f64 = (0..n)
                    .map(|i| x[i * k + a] as f64 * x[i * k + b] as f64)
                    .sum();
                assert!((g1[a * k + b] - want).abs() < 1e-4 * (1.0 + want.abs()));
                assert_eq!(g1[a * k + b], g1[b * k + a]);
            }
        }
    }
    assert!(gramian(&[1.0; 5], 2, 1).is_err());
}

#[test]
fn block_cg_converges_to_the_exact_solution_for_every_width() {
    // The CG path gathers each row once and takes every product on that
    // block (f32 products, f64 vectors); with enough steps it reaches the
    // Cholesky solution. k = 140 runs the generic accumulation (> 128).
    let (n, m) = (30, 300);
    let r = ratings(n, m, 0.5, 21, &[], &[]);
    for k in [5, 16, 40, 128, 140] {
        let fixed = normal(m * k, 0.3, 40 + k as u64);
        let cw = weights(m, 9);
        let exact = HalfSweepParams {
            k,
            unobserved_weight: 0.05,
            regularization: 0.5,
            solved_weights: None,
            fixed_weights: Some(&cw),
            solver: Solver::Cholesky,
            reg_scaling: RegScaling::None,
        };
        let want = reference_sweep(&r, &fixed, k, &exact);
        for isa in isas() {
            let cg = HalfSweepParams {
                solver: Solver::ConjugateGradient { steps: 3 * k },
                ..exact
            };
            let mut got = vec![0.0f32; n * k];
            half_sweep_with(CsrView::from_csr(&r), &fixed, &mut got, &cg, 2, isa).unwrap();
            let err = max_rel_err(&got, &want);
            assert!(err < 1e-4, "k={k} {isa:?}: {err}");
        }
    }
}

#[test]
fn cg_reports_a_direction_without_curvature_as_singular() {
    use crate::dense::Unfused;
    // A = diag(1, 0), b = (1, 1), x0 = 0: the first step moves along (1, 1),
    // the second direction (0, 2) has zero curvature; with a floor (zero
    // regularisation) that is a singular system, without one (rounding
    // under lambda > 0) the iteration stops and keeps the first step.
    let a = [1.0, 0.0, 0.0, 0.0];
    let apply = |p: &[f64], ap: &mut [f64]| {
        ap[0] = a[0] * p[0] + a[1] * p[1];
        ap[1] = a[2] * p[0] + a[3] * p[1];
    };
    let rhs = [1.0, 1.0];
    for (floor, ok) in [(row::SINGULAR_RTOL * 0.5, false), (0.0, true)] {
        let (mut x, mut r, mut p, mut ap) = ([0.0; 2], [0.0; 2], [0.0; 2], [0.0; 2]);
        let done =
            row::cg_iterate::<Unfused>(2, 5, floor, &rhs, &mut x, &mut r, &mut p, &mut ap, apply);
        assert_eq!(done, ok);
        assert_eq!(x, [2.0, 2.0]);
    }
    // a well-posed system is solved whatever the floor
    let spd = |p: &[f64], ap: &mut [f64]| {
        ap[0] = 4.0 * p[0] + p[1];
        ap[1] = p[0] + 3.0 * p[1];
    };
    let (mut x, mut r, mut p, mut ap) = ([0.0; 2], [0.0; 2], [0.0; 2], [0.0; 2]);
    assert!(row::cg_iterate::<Unfused>(
        2,
        2,
        1e-3,
        &[1.0, 2.0],
        &mut x,
        &mut r,
        &mut p,
        &mut ap,
        spd
    ));
    assert!(
        (x[0] - 1.0 / 11.0).abs() < 1e-12 && (x[1] - 7.0 / 11.0).abs() < 1e-12,
        "{x:?}"
    );
}

/// Row `i` of `r` as a one-row matrix.
fn one_row(r: &Csr, i: usize) -> Csr {
    let (s, e) = (r.indptr[i] as usize, r.indptr[i + 1] as usize);
    let cols: Vec<i64> = r.indices[s..e].iter().map(|&j| j as i64).collect();
    let rows = vec![0i64; e - s];
    Csr::from_coo(
        1,
        r.n_cols,
        &rows,
        &cols,
        &r.data[s..e],
        Duplicates::Error,
        0,
    )
    .unwrap()
}

#[test]
fn a_row_solves_to_the_same_bits_whatever_rows_are_solved_with_it() {
    // Rows share per-thread scratch (gathered entries, weights, normal
    // matrices): rows of 0 to 5000 ratings (empty rows, rows longer than the
    // scratch's first size), with and without weights, give each row the same
    // bits as solving it alone, on every instruction set, and the exact f64
    // reference to rounding.
    let m = 6000;
    let lens = [
        0usize, 3, 40, 5000, 1, 0, 17, 200, 4500, 9, 9, 9, 33, 2, 0, 60, 7, 11, 300, 5, 8, 8, 8,
    ];
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (mut rows, mut cols, mut vals) = (vec![], vec![], vec![]);
    for (i, &len) in lens.iter().enumerate() {
        let step = m / len.max(1);
        for t in 0..len {
            rows.push(i as i64);
            cols.push((t * step + rng.random_range(0..step)) as i64);
            vals.push(rng.random_range(1..=5) as f32);
        }
    }
    let n = lens.len();
    let r = Csr::from_coo(n, m, &rows, &cols, &vals, Duplicates::Error, 0).unwrap();
    let (rw, cw) = (weights(n, 7), weights(m, 8));
    for k in [3, 10, 16, 20] {
        let fixed = normal(m * k, 0.3, 9);
        for weighted in [false, true] {
            let p = HalfSweepParams {
                k,
                unobserved_weight: 0.05,
                regularization: 0.1,
                solved_weights: weighted.then_some(&rw[..]),
                fixed_weights: weighted.then_some(&cw[..]),
                solver: Solver::Cholesky,
                reg_scaling: RegScaling::Count,
            };
            let want = reference_sweep(&r, &fixed, k, &p);
            for isa in isas() {
                let mut all = vec![0.5f32; n * k];
                let view = CsrView::from_csr(&r);
                let loss = half_sweep_with(view, &fixed, &mut all, &p, 1, isa).unwrap();
                assert!(max_rel_err(&all, &want) < 1e-5, "k={k} {isa:?}");
                // the loss terms read each row's entries where its gather left them
                let lp = LossParams {
                    k,
                    unobserved_weight: p.unobserved_weight,
                    regularization: p.regularization,
                    row_weights: p.solved_weights,
                    col_weights: p.fixed_weights,
                    reg_scaling: p.reg_scaling,
                };
                let exact = reference_loss(&r, &all, &fixed, k, &lp);
                assert!(
                    (loss.total() - exact).abs() < 1e-7 * exact,
                    "k={k} {isa:?}: {loss:?} vs {exact}"
                );
                for i in 0..n {
                    let alone = one_row(&r, i);
                    let w = [rw[i]];
                    let pi = HalfSweepParams {
                        solved_weights: weighted.then_some(&w[..]),
                        ..p
                    };
                    let mut u = vec![0.5f32; k];
                    half_sweep_with(CsrView::from_csr(&alone), &fixed, &mut u, &pi, 1, isa)
                        .unwrap();
                    assert_eq!(u, all[i * k..i * k + k], "k={k} {isa:?} row {i}");
                }
            }
        }
    }
}

#[test]
fn a_singular_row_among_others_is_named() {
    // w0 = 0 and lambda = 0: row 13, with fewer ratings than factors, is
    // singular; the error names it among full-rank rows.
    let (n, m, k) = (20, 8, 3);
    let (mut rows, mut cols, mut vals) = (vec![], vec![], vec![]);
    for i in 0..n {
        for j in 0..if i == 13 { 1 } else { m } {
            rows.push(i as i64);
            cols.push(j as i64);
            vals.push(((i + j) % 5 + 1) as f32);
        }
    }
    let r = Csr::from_coo(n, m, &rows, &cols, &vals, Duplicates::Error, 0).unwrap();
    let fixed = normal(m * k, 1.0, 3);
    let p = HalfSweepParams {
        k,
        unobserved_weight: 0.0,
        regularization: 0.0,
        solved_weights: None,
        fixed_weights: None,
        solver: Solver::Cholesky,
        reg_scaling: RegScaling::None,
    };
    for isa in isas() {
        let mut u = vec![0.0f32; n * k];
        let err = half_sweep_with(CsrView::from_csr(&r), &fixed, &mut u, &p, 1, isa).unwrap_err();
        assert!(
            matches!(err, Error::Numerical(ref s) if s.contains("row 13") && s.contains("singular")),
            "{isa:?}: {err}"
        );
    }
}

/// Ratings whose row `i` has `len(i)` entries in distinct random columns
/// (values in 1..=5).
fn ratings_with_lengths(n: usize, m: usize, len: impl Fn(usize) -> usize, seed: u64) -> Csr {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut r, mut c, mut v) = (vec![], vec![], vec![]);
    for i in 0..n {
        let mut cols: Vec<usize> = (0..m).collect();
        for t in 0..len(i).min(m) {
            let pick = rng.random_range(t..m);
            cols.swap(t, pick);
            r.push(i as i64);
            c.push(cols[t] as i64);
            v.push(rng.random_range(1..=5) as f32);
        }
    }
    Csr::from_coo(n, m, &r, &c, &v, Duplicates::Error, 0).unwrap()
}

/// A half-sweep with a chosen policy for short rows: `(after, before)`.
#[allow(clippy::too_many_arguments)]
fn sweep_short_rows(
    r: &Csr,
    fixed: &[f32],
    out: &mut [f32],
    p: &HalfSweepParams<'_>,
    threads: usize,
    isa: Isa,
    short: ShortRows,
) -> Result<(Loss, Loss)> {
    let cancel = Cancel::new();
    let (after, before) = half_sweep_impl(
        CsrView::from_csr(r),
        fixed,
        out,
        p,
        threads,
        isa,
        &cancel,
        true,
        short,
        LossDetail::Terms,
    )?
    .expect("not cancelled");
    Ok((terms(after), terms(before.expect("asked for"))))
}

#[test]
fn short_rows_solved_in_the_space_of_their_entries_match_the_reference() {
    // every length from 1 to k + 3 (rows of at most max_entries(k) take the
    // Woodbury path with ShortRows::Always), plus an empty row
    for k in [2, 7, 16, 17, 33, 64, 100, 128] {
        let n = k + 4;
        let m = k + 40;
        let r = ratings_with_lengths(n, m, |i| if i == 3 { 0 } else { i % (k + 3) + 1 }, k as u64);
        let rw = weights(n, 1);
        let cw = weights(m, 2);
        let fixed = normal(m * k, 0.2, 3 + k as u64);
        let start = normal(n * k, 0.2, 4 + k as u64);
        for (solved_w, fixed_w) in [(None, None), (Some(&rw[..]), Some(&cw[..]))] {
            for (w0, lam) in [(0.01, 0.07), (2.0, 0.5), (0.0, 0.3)] {
                let p = HalfSweepParams {
                    k,
                    unobserved_weight: w0,
                    regularization: lam,
                    solved_weights: solved_w,
                    fixed_weights: fixed_w,
                    solver: Solver::Cholesky,
                    reg_scaling: RegScaling::None,
                };
                let lp = LossParams {
                    k,
                    unobserved_weight: w0,
                    regularization: lam,
                    row_weights: solved_w,
                    col_weights: fixed_w,
                    reg_scaling: RegScaling::None,
                };
                let want = reference_sweep(&r, &fixed, k, &p);
                let exact_before = reference_loss(&r, &start, &fixed, k, &lp);
                for isa in isas() {
                    let mut got = start.clone();
                    let (after, before) =
                        sweep_short_rows(&r, &fixed, &mut got, &p, 2, isa, ShortRows::Always)
                            .unwrap();
                    let what = format!("k={k} w0={w0} lam={lam} {isa:?} {solved_w:?}");
                    let mut direct = start.clone();
                    sweep_short_rows(&r, &fixed, &mut direct, &p, 2, isa, ShortRows::Never)
                        .unwrap();
                    // Both paths sum in f32; this one also rounds y_j = L^-1 v_j
                    // to f32 (a perturbation of the fixed rows at their own
                    // precision), and takes Y^T M^-1 g, which cancels nothing:
                    // at most the direct path's error from k = 33 on (the form
                    // z - Y^T M^-1 Y z had up to 2.7x it here, at k = 128 with
                    // weights), 1.3x where both are below 1e-6.
                    let err = max_rel_err(&got, &want);
                    let err_direct = max_rel_err(&direct, &want);
                    assert!(err_direct < 2e-5, "{what}: {err_direct}");
                    assert!(
                        err < 1e-6_f64.max(1.1 * err_direct),
                        "{what}: {err} vs {err_direct}"
                    );
                    assert!(got[3 * k..4 * k].iter().all(|&v| v == 0.0), "empty row");
                    // the loss terms read the whitened block: at the new
                    // factors and at the starting ones
                    let exact = reference_loss(&r, &got, &fixed, k, &lp);
                    assert!(
                        (after.total() - exact).abs() < 1e-7 * exact.max(1.0),
                        "{what}: {after:?} vs {exact}"
                    );
                    assert!(
                        (before.total() - exact_before).abs() < 1e-7 * exact_before,
                        "{what}: {before:?} vs {exact_before}"
                    );
                    // the short rows took the other path: other rounding
                    let short = |x: &[f32]| -> Vec<f32> {
                        (0..n)
                            .filter(|&i| (1..k).contains(&r.row(i).0.len()))
                            .flat_map(|i| x[i * k..i * k + k].to_vec())
                            .collect()
                    };
                    if k >= 7 {
                        // (with 2 factors, a few values may round alike)
                        assert_ne!(short(&got), short(&direct), "{what}");
                    }
                    // rows of k entries or more are solved as before, bit for bit
                    for i in 0..n {
                        if r.row(i).0.len() >= k {
                            assert_eq!(got[i * k..i * k + k], direct[i * k..i * k + k], "{what}");
                        }
                    }
                    // and the same bits for any thread count
                    let mut one = start.clone();
                    let losses =
                        sweep_short_rows(&r, &fixed, &mut one, &p, 1, isa, ShortRows::Always)
                            .unwrap();
                    assert_eq!(one, got, "{what}");
                    assert_eq!(losses, (after, before), "{what}");
                }
            }
        }
    }
}

#[test]
fn short_rows_with_an_entry_of_no_weight_of_its_own_are_solved_directly() {
    // w_t = 0 (a fixed column of weight 0) puts W_t a_t y_j = w0 a_t y_j into
    // z outside the span of Y^T: such a row takes the direct path, bit for
    // bit, and the others the path of their entries
    let (k, n, m) = (40, 30, 80);
    let r = ratings_with_lengths(n, m, |i| i + 1, 12);
    let fixed = normal(m * k, 0.4, 13);
    let mut cw = weights(m, 14);
    let zero = r.row(n - 1).0[0] as usize;
    cw[zero] = 0.0;
    let p = HalfSweepParams {
        k,
        unobserved_weight: 0.1,
        regularization: 0.07,
        solved_weights: None,
        fixed_weights: Some(&cw),
        solver: Solver::Cholesky,
        reg_scaling: RegScaling::None,
    };
    let want = reference_sweep(&r, &fixed, k, &p);
    let has_zero = |i: usize| r.row(i).0.contains(&(zero as i32));
    assert!(
        (1..n).filter(|&i| has_zero(i)).count() > 3,
        "rows of several entries with it"
    );
    for isa in isas() {
        let start = normal(n * k, 0.4, 15);
        let (mut a, mut b) = (start.clone(), start);
        sweep_short_rows(&r, &fixed, &mut a, &p, 2, isa, ShortRows::Always).unwrap();
        sweep_short_rows(&r, &fixed, &mut b, &p, 2, isa, ShortRows::Never).unwrap();
        assert!(max_rel_err(&a, &want) < 1e-5, "{isa:?}");
        for i in 0..n {
            let (ra, rb) = (&a[i * k..i * k + k], &b[i * k..i * k + k]);
            if has_zero(i) || r.row(i).0.len() > woodbury::max_entries(k) {
                assert_eq!(ra, rb, "{isa:?} row {i}");
            } else {
                assert_ne!(ra, rb, "{isa:?} row {i}");
            }
        }
    }
}

#[test]
fn short_rows_take_the_direct_solve_when_lambda_is_zero_or_scaled() {
    let k = 40;
    let (n, m) = (30, 80);
    let r = ratings_with_lengths(n, m, |i| i + 1, 9);
    let fixed = normal(m * k, 0.4, 10);
    for (w0, lam, scaling) in [
        // lambda_i = lambda |O_i| differs from row to row
        (0.1, 0.07, RegScaling::Count),
        // lambda = 0: only the direct path tells which rows are singular
        // (B = 0 here; B = w0 G otherwise, possibly near-singular)
        (0.0, 0.0, RegScaling::None),
        (0.5, 0.0, RegScaling::None),
    ] {
        let p = HalfSweepParams {
            k,
            unobserved_weight: w0,
            regularization: lam,
            solved_weights: None,
            fixed_weights: None,
            solver: Solver::Cholesky,
            reg_scaling: scaling,
        };
        for isa in isas() {
            let mut a = normal(n * k, 0.4, 11);
            let mut b = a.clone();
            let ra = sweep_short_rows(&r, &fixed, &mut a, &p, 2, isa, ShortRows::Always);
            let rb = sweep_short_rows(&r, &fixed, &mut b, &p, 2, isa, ShortRows::Never);
            match (ra, rb) {
                (Ok(la), Ok(lb)) => {
                    assert_eq!(la, lb);
                    assert_eq!(a, b);
                }
                (Err(Error::Numerical(ea)), Err(Error::Numerical(eb))) => assert_eq!(ea, eb),
                other => panic!("{scaling:?} w0={w0} lam={lam} {isa:?}: {other:?}"),
            }
        }
    }
}

/// A half-sweep from `start` with a loss of the given detail: the factors,
/// and the totals `(before, after)`.
#[allow(clippy::too_many_arguments)]
fn sweep_with_detail(
    r: &Csr,
    fixed: &[f32],
    start: &[f32],
    p: &HalfSweepParams<'_>,
    isa: Isa,
    short: ShortRows,
    detail: LossDetail,
) -> (Vec<f32>, f64, f64) {
    let mut out = start.to_vec();
    let (after, before) = half_sweep_impl(
        CsrView::from_csr(r),
        fixed,
        &mut out,
        p,
        2,
        isa,
        &Cancel::new(),
        true,
        short,
        detail,
    )
    .unwrap()
    .expect("not cancelled");
    (out, before.expect("asked for").total(), after.total())
}

/// `sum W_ij A_ij^2` over the observed entries: the size of the terms that
/// cancel in a row's `c - 2 b.u + u^T A u`.
fn weighted_square_sum(r: &Csr, w0: f64, rw: &[f32], cw: &[f32]) -> f64 {
    (0..r.n_rows)
        .map(|i| {
            let (idx, vals) = r.row(i);
            idx.iter()
                .zip(vals)
                .map(|(&j, &a)| (w0 + rw[i] as f64 * cw[j as usize] as f64) * (a as f64).powi(2))
                .sum::<f64>()
        })
        .sum()
}

#[test]
fn the_total_from_the_normal_equations_matches_the_terms_and_the_reference() {
    // rows from empty to several blocks long (k > 16: 8192 / kp entries a
    // block), solved directly, in the space of their entries, by CG on the
    // row kept whole; the factors must not depend on the detail
    let (n, m) = (36, 420);
    let r = ratings_with_lengths(n, m, |i| (i * i * 7) % 411, 5);
    let rw = weights(n, 6);
    let cw = weights(m, 7);
    for k in [3, 10, 16, 20, 40, 64] {
        let fixed = normal(m * k, 0.3, 40 + k as u64);
        let start = normal(n * k, 0.3, 50 + k as u64);
        for (w0, lam, scaling) in [
            (0.2, 0.07, RegScaling::None),
            (0.0, 0.3, RegScaling::None),
            (0.05, 0.01, RegScaling::Count),
            (0.5, 0.0, RegScaling::None),
        ] {
            let c = weighted_square_sum(&r, w0, &rw, &cw);
            let lp = LossParams {
                k,
                unobserved_weight: w0,
                regularization: lam,
                row_weights: Some(&rw),
                col_weights: Some(&cw),
                reg_scaling: scaling,
            };
            let at_start = reference_loss(&r, &start, &fixed, k, &lp);
            for (solver, short) in [
                (Solver::Cholesky, ShortRows::Never),
                (Solver::Cholesky, ShortRows::Always),
                (Solver::ConjugateGradient { steps: 3 }, ShortRows::Auto),
            ] {
                let p = HalfSweepParams {
                    k,
                    unobserved_weight: w0,
                    regularization: lam,
                    solved_weights: Some(&rw),
                    fixed_weights: Some(&cw),
                    solver,
                    reg_scaling: scaling,
                };
                for isa in isas() {
                    let what = format!("k={k} w0={w0} {scaling:?} {solver:?} {short:?} {isa:?}");
                    let terms =
                        sweep_with_detail(&r, &fixed, &start, &p, isa, short, LossDetail::Terms);
                    let total =
                        sweep_with_detail(&r, &fixed, &start, &p, isa, short, LossDetail::Total);
                    assert_eq!(terms.0, total.0, "{what}: the factors");
                    let at_end = reference_loss(&r, &total.0, &fixed, k, &lp);
                    // the terms are exact to 1e-6 of the loss; the total to
                    // 1e-7 of the weighted squares it cancels against (at
                    // most 2.4e-8 here)
                    for (got, by_terms, exact) in
                        [(total.1, terms.1, at_start), (total.2, terms.2, at_end)]
                    {
                        assert!((by_terms - exact).abs() <= 1e-6 * exact, "{what}");
                        assert!(
                            (got - exact).abs() <= 1e-7 * (c + exact),
                            "{what}: {got} against {exact} (c = {c})"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn a_row_the_model_explains_exactly_sums_its_entries_for_the_total() {
    // ratings that a k-factor model reproduces exactly, no unobserved weight
    // and almost no regularisation: each row's loss is rounding next to the
    // terms that cancel in c - 2 b.u + u^T A u, so the total must come from
    // the rows' entries (and be as exact as the terms)
    let (n, m) = (40, 60);
    for k in [4, 10, 24, 40] {
        let fixed = normal(m * k, 0.5, 60 + k as u64);
        let truth = normal(n * k, 0.5, 70 + k as u64);
        let mut rng = ChaCha8Rng::seed_from_u64(80 + k as u64);
        let (mut r, mut c, mut v) = (vec![], vec![], vec![]);
        for i in 0..n {
            for j in 0..m {
                if rng.random_bool(0.7) {
                    let a: f64 = (0..k)
                        .map(|d| truth[i * k + d] as f64 * fixed[j * k + d] as f64)
                        .sum();
                    r.push(i as i64);
                    c.push(j as i64);
                    v.push(a as f32);
                }
            }
        }
        let ratings = Csr::from_coo(n, m, &r, &c, &v, Duplicates::Error, 0).unwrap();
        let start = normal(n * k, 0.5, 90 + k as u64);
        let lp = LossParams {
            k,
            unobserved_weight: 0.0,
            regularization: 1e-9,
            row_weights: None,
            col_weights: None,
            reg_scaling: RegScaling::None,
        };
        for solver in [Solver::Cholesky, Solver::ConjugateGradient { steps: 40 }] {
            let p = HalfSweepParams {
                k,
                unobserved_weight: 0.0,
                regularization: 1e-9,
                solved_weights: None,
                fixed_weights: None,
                solver,
                reg_scaling: RegScaling::None,
            };
            for short in [ShortRows::Never, ShortRows::Always] {
                for isa in isas() {
                    let what = format!("k={k} {solver:?} {short:?} {isa:?}");
                    let total = sweep_with_detail(
                        &ratings,
                        &fixed,
                        &start,
                        &p,
                        isa,
                        short,
                        LossDetail::Total,
                    );
                    let exact = reference_loss(&ratings, &total.0, &fixed, k, &lp);
                    let scale: f64 = v.iter().map(|&a| (a as f64).powi(2)).sum();
                    // a fit this close: the loss is far below the ratings' size
                    assert!(exact < 1e-4 * scale, "{what}: {exact} against {scale}");
                    assert!(
                        (total.2 - exact).abs() <= 1e-3 * exact,
                        "{what}: {} against {exact}",
                        total.2
                    );
                }
            }
        }
    }
}

/// `steps` conjugate-gradient steps in f64 on every row's normal equations
/// from `start`, without forming them (products `A p = w0 G p + lam p + sum_t
/// w_t v_t (v_t . p)`): with `precondition`, preconditioned by `B = w0 G +
/// lam I` (textbook PCG with `z = B^-1 r`; `lam` not scaled), else plain.
/// `G` skips the zeros of the fixed rows, so sparse rows keep it cheap at
/// large `k`.
fn reference_cg(
    r: &Csr,
    fixed: &[f32],
    start: &[f32],
    k: usize,
    p: &HalfSweepParams<'_>,
    steps: usize,
    precondition: bool,
) -> Vec<f64> {
    let mut g = vec![0.0; k * k];
    for v in fixed.chunks_exact(k) {
        let nz: Vec<usize> = (0..k).filter(|&a| v[a] != 0.0).collect();
        for &a in &nz {
            for &b in &nz {
                g[a * k + b] += v[a] as f64 * v[b] as f64;
            }
        }
    }
    let w0 = p.unobserved_weight;
    let factor = precondition.then(|| {
        let mut b: Vec<f64> = g.iter().map(|x| x * w0).collect();
        for d in 0..k {
            b[d * k + d] += p.regularization;
        }
        cholesky_upper::<Unfused>(&mut b, k, k, &vec![0.0; k]).expect("B positive definite");
        b
    });
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let mut out = vec![0.0; r.n_rows * k];
    for i in 0..r.n_rows {
        let (idx, vals) = r.row(i);
        if idx.is_empty() {
            continue;
        }
        let si = p.solved_weights.map_or(1.0, |s| s[i] as f64);
        let lam = match p.reg_scaling {
            RegScaling::None => p.regularization,
            RegScaling::Count => p.regularization * idx.len() as f64,
        };
        let row = |j: i32| &fixed[j as usize * k..j as usize * k + k];
        let wt = |j: i32| si * p.fixed_weights.map_or(1.0, |f| f[j as usize] as f64);
        let apply = |x: &[f64]| -> Vec<f64> {
            let mut y: Vec<f64> = (0..k)
                .map(|a| w0 * dot(&g[a * k..a * k + k], x) + lam * x[a])
                .collect();
            for &j in idx {
                let v: Vec<f64> = row(j).iter().map(|&t| t as f64).collect();
                let s = wt(j) * dot(&v, x);
                for (ya, va) in y.iter_mut().zip(&v) {
                    *ya += s * va;
                }
            }
            y
        };
        let mut b = vec![0.0; k];
        for (&j, &a) in idx.iter().zip(vals) {
            for (bd, &v) in b.iter_mut().zip(row(j)) {
                *bd += (w0 + wt(j)) * a as f64 * v as f64;
            }
        }
        let precond = |res: &[f64]| {
            let mut z = res.to_vec();
            if let Some(u) = &factor {
                cholesky_solve::<Unfused>(u, k, k, &mut z);
            }
            z
        };
        let mut x: Vec<f64> = start[i * k..i * k + k].iter().map(|&t| t as f64).collect();
        let ax = apply(&x);
        let mut res: Vec<f64> = b.iter().zip(&ax).map(|(b, a)| b - a).collect();
        let mut z = precond(&res);
        let mut dir = z.clone();
        let mut rz = dot(&res, &z);
        for _ in 0..steps {
            if rz <= 0.0 {
                break;
            }
            let ad = apply(&dir);
            let alpha = rz / dot(&dir, &ad);
            for d in 0..k {
                x[d] += alpha * dir[d];
                res[d] -= alpha * ad[d];
            }
            z = precond(&res);
            let rz_new = dot(&res, &z);
            for d in 0..k {
                dir[d] = z[d] + rz_new / rz * dir[d];
            }
            rz = rz_new;
        }
        out[i * k..i * k + k].copy_from_slice(&x);
    }
    out
}

#[test]
fn cg_is_preconditioned_by_the_shared_part_exactly_when_every_row_shares_it() {
    // B = w0 G + lam I preconditions the CG when lam > 0 is the same for
    // every row (the whitened iteration), not with lam scaled by the count
    // or lam = 0; each matches its f64 reference step for step, and the two
    // references are far apart, so the test tells them apart. k = 5 gathers
    // the padded (whitened) copy, 40 and 128 the factor's rows.
    let (n, m) = (30, 200);
    let r = ratings(n, m, 0.25, 31, &[3], &[]);
    let rw = weights(n, 32);
    let cw = weights(m, 33);
    for k in [5, 40, 128] {
        // columns of very different scales make B far from a multiple of I
        let mut fixed = normal(m * k, 0.3, 50 + k as u64);
        for v in fixed.chunks_exact_mut(k) {
            for (a, x) in v.iter_mut().enumerate() {
                *x *= 1.0 + 4.0 * (a % 4) as f32;
            }
        }
        let start = normal(n * k, 0.3, 60 + k as u64);
        for (scaling, lam, preconditioned) in [
            (RegScaling::None, 0.3, true),
            (RegScaling::Count, 0.3, false),
            (RegScaling::None, 0.0, false),
        ] {
            for steps in [1, 3] {
                let p = HalfSweepParams {
                    k,
                    unobserved_weight: 0.4,
                    regularization: lam,
                    solved_weights: Some(&rw),
                    fixed_weights: Some(&cw),
                    solver: Solver::ConjugateGradient { steps },
                    reg_scaling: scaling,
                };
                let want = reference_cg(&r, &fixed, &start, k, &p, steps, preconditioned);
                let other = reference_cg(&r, &fixed, &start, k, &p, steps, !preconditioned);
                for isa in isas() {
                    let mut got = start.clone();
                    half_sweep_with(CsrView::from_csr(&r), &fixed, &mut got, &p, 2, isa).unwrap();
                    let (err, apart) = (max_rel_err(&got, &want), max_rel_err(&got, &other));
                    let case = format!("k={k} {scaling:?} lam={lam} steps={steps} {isa:?}");
                    assert!(err < 2e-5, "{case}: {err}");
                    assert!(
                        apart > 1e-2,
                        "{case}: the other iteration is close too ({apart})"
                    );
                }
            }
        }
    }
}

#[test]
fn preconditioned_cg_solves_a_row_of_r_ratings_in_r_plus_one_steps() {
    // With B = w0 G + lam I shared, a row's whitened matrix I + Y^T W Y is
    // the identity plus a term of rank r (its r ratings): r + 1 distinct
    // eigenvalues, so the CG reaches the exact minimiser in r + 1 steps, and
    // not before (the plain iteration would need up to k).
    let (n, m, k) = (30, 50, 40);
    let r = ratings_with_lengths(n, m, |i| 1 + i % 3, 8);
    let fixed = normal(m * k, 0.5, 9);
    let cw = weights(m, 10);
    let exact = HalfSweepParams {
        k,
        unobserved_weight: 0.3,
        regularization: 0.2,
        solved_weights: None,
        fixed_weights: Some(&cw),
        solver: Solver::Cholesky,
        reg_scaling: RegScaling::None,
    };
    let want = reference_sweep(&r, &fixed, k, &exact);
    let start = normal(n * k, 0.5, 11);
    for steps in 1..=4 {
        let cg = HalfSweepParams {
            solver: Solver::ConjugateGradient { steps },
            ..exact
        };
        for isa in isas() {
            let mut got = start.clone();
            half_sweep_with(CsrView::from_csr(&r), &fixed, &mut got, &cg, 2, isa).unwrap();
            for i in 0..n {
                let row = i * k..i * k + k;
                let err = max_rel_err(&got[row.clone()], &want[row]);
                let ratings = 1 + i % 3;
                if steps > ratings {
                    assert!(
                        err < 1e-5,
                        "row {i} ({ratings} ratings) {steps} steps {isa:?}: {err}"
                    );
                } else {
                    assert!(
                        err > 1e-3,
                        "row {i} ({ratings} ratings) exact after {steps} steps"
                    );
                }
            }
        }
    }
}

#[test]
fn a_row_too_long_to_keep_whole_runs_the_same_preconditioned_iteration() {
    // At k = 1024 a row of more than 8192 ratings (2^23 values) is not kept
    // whole: every CG step reads the (whitened) fixed rows again. Its result
    // matches the f64 references like a row kept whole (the second row).
    // The fixed rows have four nonzeros each, so the reference's G is cheap.
    let (k, m) = (1024, 8300);
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let mut fixed = vec![0.0f32; m * k];
    for v in fixed.chunks_exact_mut(k) {
        for _ in 0..4 {
            v[rng.random_range(0..k)] = rng.random_range(-1.0..1.0);
        }
    }
    let cols: Vec<i64> = (0..m as i64).chain(0..10).collect();
    let rows: Vec<i64> = std::iter::repeat_n(0, m)
        .chain(std::iter::repeat_n(1, 10))
        .collect();
    let vals: Vec<f32> = (0..cols.len()).map(|t| (1 + t % 5) as f32).collect();
    let r = Csr::from_coo(2, m, &rows, &cols, &vals, Duplicates::Error, 0).unwrap();
    let start = normal(2 * k, 0.1, 13);
    let isa = Isa::detect();
    for (scaling, preconditioned) in [(RegScaling::None, true), (RegScaling::Count, false)] {
        let p = HalfSweepParams {
            k,
            unobserved_weight: 0.5,
            regularization: 0.3,
            solved_weights: None,
            fixed_weights: None,
            solver: Solver::ConjugateGradient { steps: 3 },
            reg_scaling: scaling,
        };
        let want = reference_cg(&r, &fixed, &start, k, &p, 3, preconditioned);
        let other = reference_cg(&r, &fixed, &start, k, &p, 3, !preconditioned);
        let mut got = start.clone();
        half_sweep_with(CsrView::from_csr(&r), &fixed, &mut got, &p, 2, isa).unwrap();
        for i in 0..2 {
            let row = i * k..i * k + k;
            let err = max_rel_err(&got[row.clone()], &want[row.clone()]);
            let apart = max_rel_err(&got[row.clone()], &other[row]);
            assert!(err < 2e-5, "row {i} {scaling:?}: {err}");
            assert!(
                apart > 1e-3,
                "row {i} {scaling:?}: the other iteration is close ({apart})"
            );
        }
    }
}
