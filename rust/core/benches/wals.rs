//! Criterion benchmarks of the WALS core: one half-sweep at k = 10 and 64 on a
//! synthetic power-law ratings matrix, on each instruction set this CPU has
//! (side by side: a kernel path that falls far behind the next narrower one
//! shows here), and the per-row normal-matrix kernel against the `gemm`
//! crate on the same gathered block.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use embspace_core::wals::{
    bench as internals, half_sweep_with, CsrView, HalfSweepParams, Isa, RegScaling, Solver,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::hint::black_box;

fn bench_half_sweep(c: &mut Criterion) {
    let r = internals::synthetic_ratings(20_000, 4_000, 100.0, 2_000, 1);
    let t = r.transpose();
    let counts: Vec<f32> = (0..t.n_rows)
        .map(|j| (t.row(j).0.len().max(1) as f32).powf(-0.08))
        .collect();
    let mut group = c.benchmark_group(format!("half_sweep_{}_ratings", r.nnz()));
    group.sample_size(10);
    for k in [10, 64] {
        let v = internals::random_factors(r.n_cols, k, 2);
        let mut u = internals::random_factors(r.n_rows, k, 3);
        for (name, solver) in [
            ("cholesky", Solver::Cholesky),
            ("cg3", Solver::ConjugateGradient { steps: 3 }),
        ] {
            let p = HalfSweepParams {
                k,
                unobserved_weight: 0.01,
                regularization: 0.07,
                solved_weights: None,
                fixed_weights: Some(&counts),
                solver,
                reg_scaling: RegScaling::None,
            };
            for isa in [Isa::Avx512, Isa::Avx2, Isa::Portable] {
                if !isa.available() {
                    continue;
                }
                let id = BenchmarkId::new(format!("{name}_{}", isa.name()), k);
                group.bench_with_input(id, &k, |b, _| {
                    b.iter(|| {
                        half_sweep_with(CsrView::from_csr(&r), &v, &mut u, &p, 2, isa).unwrap()
                    })
                });
            }
        }
    }
    group.finish();
}

/// The normal matrix `B^T B` of one gathered block (nb rows of k factors):
/// embspace's upper-triangle register-tiled kernel against `gemm` computing
/// the full product (its fastest single-threaded path), both in f32 inputs.
fn bench_block_kernel(c: &mut Criterion) {
    let mut group = c.benchmark_group("block_normal_matrix");
    for (k, nb) in [
        (10, 32),
        (10, 512),
        (64, 32),
        (64, 512),
        (128, 32),
        (128, 64),
        (128, 128),
        (128, 256),
    ] {
        let kp = internals::padded(k);
        let mut rng = ChaCha8Rng::seed_from_u64(k as u64);
        let mut block = vec![0.0f32; nb * kp];
        for t in 0..nb {
            for a in 0..k {
                block[t * kp + a] = rng.random_range(-1.0..1.0);
            }
        }
        let mut out = vec![0.0f64; kp * kp];
        let id = format!("k{k}_nb{nb}");
        group.bench_function(BenchmarkId::new("embspace", &id), |b| {
            b.iter(|| internals::block_gram(Isa::detect(), black_box(&block), nb, k, &mut out))
        });
        let mut dst = vec![0.0f32; k * k];
        group.bench_function(BenchmarkId::new("gemm", &id), |b| {
            b.iter(|| {
                // dst (k x k, row-major) = block^T (k x nb) * block (nb x k)
                // SAFETY: every pointer covers its matrix with the given strides.
                unsafe {
                    gemm::gemm(
                        k,
                        k,
                        nb,
                        dst.as_mut_ptr(),
                        1,
                        k as isize,
                        false,
                        block.as_ptr(),
                        kp as isize,
                        1,
                        block.as_ptr(),
                        1,
                        kp as isize,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    )
                }
                black_box(&dst);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_block_kernel, bench_half_sweep);
criterion_main!(benches);
