//! Criterion benchmarks of the exact k-NN (`cargo bench -p embspace-core --bench knn`).
//!
//! Sizes are small enough for a quick run; the comparison against faiss,
//! scikit-learn and numpy at MovieLens sizes lives in `benches/bench_knn.py`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use embspace_core::knn::{knn, Metric};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn data(n: usize, d: usize) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    (0..n * d)
        .map(|_| rng.random::<f32>() * 2.0 - 1.0)
        .collect()
}

fn bench_knn(c: &mut Criterion) {
    let mut group = c.benchmark_group("knn_k10");
    group.sample_size(10);
    for &(n, d) in &[(8192usize, 10usize), (8192, 64)] {
        let x = data(n, d);
        group.throughput(Throughput::Elements((n * n) as u64));
        for (name, metric) in [
            ("cosine", Metric::Cosine),
            ("euclidean", Metric::Euclidean),
            ("dot", Metric::Dot),
        ] {
            group.bench_with_input(BenchmarkId::new(name, format!("{n}x{d}")), &x, |b, x| {
                b.iter(|| knn(black_box(x), n, d, None, 10, metric, 2).expect("valid input"))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_knn);
criterion_main!(benches);
