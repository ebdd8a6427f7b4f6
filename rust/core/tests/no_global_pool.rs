//! No public function of the core may use rayon's global pool: its threads
//! would not survive a `fork`, and a forked child's next parallel call would
//! wait for them forever. This test (its own process) calls every parallel
//! entry point, then checks that the global pool was never initialised:
//! `build_global` fails once anything has used the global pool.

use embspace_core::csr::{transpose_parts, transpose_threads, Csr, Duplicates};
use embspace_core::knn::{knn, knn_cancellable, Metric};
use embspace_core::parallel::Cancel;
use embspace_core::spmv::{csr_matvec, SparseGram};
use embspace_core::wals::{
    gramian, half_sweep, half_sweep_from, half_sweep_run, loss, loss_cancellable, CsrView,
    HalfSweepParams, LossDetail, LossParams, RegScaling, Solver, SweepReturns,
};

#[test]
fn no_entry_point_initialises_the_global_pool() {
    let (n, m, k) = (40usize, 30usize, 4usize);
    let (mut rows, mut cols, mut vals) = (vec![], vec![], vec![]);
    for i in 0..n {
        for j in 0..m {
            if (i * 7 + j * 3) % 4 == 0 {
                rows.push(i as i64);
                cols.push(j as i64);
                vals.push(1.0 + ((i + j) % 5) as f32);
            }
        }
    }
    let a = Csr::from_coo(n, m, &rows, &cols, &vals, Duplicates::Error, 2).unwrap();
    Csr::validate_parts(n, m, &a.indptr, &a.indices, &a.data).unwrap();
    let t = transpose_parts(n, m, &a.indptr, &a.indices, &a.data);
    assert_eq!(
        transpose_threads(n, m, &a.indptr, &a.indices, &a.data, 2).unwrap(),
        t
    );
    let mut y = vec![0.0; n];
    csr_matvec(CsrView::from_csr(&a), &vec![1.0; m], &mut y, 2).unwrap();
    let g = SparseGram::new(CsrView::from_csr(&a), 2).unwrap();
    let mut z = vec![0.0; m];
    g.apply(&a.data, &vec![1.0; m], &mut z, 0).unwrap();
    g.matmat(&a.data, &vec![1.0; m], 1, &mut y, 2).unwrap();

    let mut u: Vec<f32> = (0..n * k).map(|i| ((i % 7) as f32 - 3.0) / 10.0).collect();
    let mut v: Vec<f32> = (0..m * k).map(|i| ((i % 5) as f32 - 2.0) / 10.0).collect();
    for solver in [Solver::Cholesky, Solver::ConjugateGradient { steps: 2 }] {
        let p = HalfSweepParams {
            k,
            unobserved_weight: 0.1,
            regularization: 0.1,
            solved_weights: None,
            fixed_weights: None,
            solver,
            reg_scaling: RegScaling::Count,
        };
        half_sweep(CsrView::from_csr(&a), &v, &mut u, &p, 2).unwrap();
        half_sweep_from(CsrView::from_csr(&a), &v, &mut u, &p, 2).unwrap();
        for start_loss in [false, true] {
            for detail in [LossDetail::Terms, LossDetail::Total] {
                let returns = SweepReturns { start_loss, detail };
                let view = CsrView::from_csr(&t);
                half_sweep_run(view, &u, &mut v, &p, 0, returns, &Cancel::new())
                    .unwrap()
                    .unwrap();
            }
        }
    }
    let lp = LossParams {
        k,
        unobserved_weight: 0.1,
        regularization: 0.1,
        row_weights: None,
        col_weights: None,
        reg_scaling: RegScaling::None,
    };
    loss(CsrView::from_csr(&a), &u, &v, &lp, 2).unwrap();
    loss_cancellable(CsrView::from_csr(&a), &u, &v, &lp, 0, &Cancel::new())
        .unwrap()
        .unwrap();
    gramian(&u, k, 0).unwrap();
    for metric in [Metric::Cosine, Metric::Euclidean, Metric::Dot] {
        knn(&u, n, k, None, 3, metric, 2).unwrap();
        knn_cancellable(&u, n, k, Some(&[0, 5]), 3, metric, 0, &Cancel::new())
            .unwrap()
            .unwrap();
    }

    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build_global()
        .expect("some entry point of the core used rayon's global pool");
}
