//! Cholesky factorisation and solve of [`LANES`] small systems at once, one
//! system per `f64` lane.
//!
//! With few factors (`k <= 16`) one row's Cholesky and substitutions are a
//! chain of dependent scalar operations (each pivot's square root, then its
//! reciprocal, then the updates that need it), so a row spends most of that
//! time waiting on latencies. Here element `(a, b)` of eight rows' matrices is
//! one `[f64; 8]`, and every step is the same operation on the eight lanes:
//! the loops compile to one vector instruction per step where the target has
//! 512-bit vectors (two with AVX2, eight scalars on the baseline), so eight
//! rows take about the time of one.
//!
//! Lanes never mix: what a lane computes depends only on that lane's inputs,
//! so a row's solution is the same bits whichever rows share its batch (and
//! an unused lane, given the identity, changes nothing).

use crate::dense::MulAdd;

/// Rows solved together.
pub(crate) const LANES: usize = 8;

/// One element of the [`LANES`] systems.
pub(crate) type Lane = [f64; LANES];

/// The normal equations of up to [`LANES`] rows with `k` unknowns each.
pub(crate) struct LaneSystems {
    k: usize,
    /// `k x k`, row-major, upper triangle used: `a[r * k + c][l]` is element
    /// `(r, c)` of lane `l`'s matrix (then its factor `U`).
    a: Vec<Lane>,
    /// Right-hand sides (then the solutions), `k`.
    x: Vec<Lane>,
    /// The smallest acceptable pivot of each column, `k`.
    min_pivot: Vec<Lane>,
    /// Reciprocals of the factor's diagonal, `k`.
    inv: Vec<Lane>,
    /// Lanes in use (filled from 0).
    used: usize,
}

impl LaneSystems {
    pub fn new(k: usize) -> LaneSystems {
        LaneSystems {
            k,
            a: vec![[0.0; LANES]; k * k],
            x: vec![[0.0; LANES]; k],
            min_pivot: vec![[0.0; LANES]; k],
            inv: vec![[0.0; LANES]; k],
            used: 0,
        }
    }

    /// Free every lane, for systems of `k` unknowns.
    #[inline(always)]
    pub fn reset(&mut self, k: usize) {
        if self.k != k {
            *self = LaneSystems::new(k);
        }
        self.used = 0;
    }

    /// Lanes in use.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.used
    }

    /// Whether every lane is in use.
    #[inline(always)]
    pub fn is_full(&self) -> bool {
        self.used == LANES
    }

    /// Put a system into the next free lane and return that lane: the upper
    /// triangle of the leading `k x k` block of `a` (row-major, leading
    /// dimension `ld`), the right-hand side `rhs[..k]` and the pivot floors
    /// `min_pivot[..k]`.
    #[inline(always)]
    pub fn push(&mut self, a: &[f64], ld: usize, rhs: &[f64], min_pivot: &[f64]) -> usize {
        let (k, l) = (self.k, self.used);
        assert!(l < LANES && rhs.len() >= k && min_pivot.len() >= k);
        assert!(k == 0 || a.len() >= (k - 1) * ld + k);
        for r in 0..k {
            for c in r..k {
                self.a[r * k + c][l] = a[r * ld + c];
            }
            self.x[r][l] = rhs[r];
            self.min_pivot[r][l] = min_pivot[r];
        }
        self.used += 1;
        l
    }

    /// Factor and solve every lane in use (the free lanes hold the identity
    /// and a zero right-hand side while this runs, then are free again).
    /// Returns, per lane, the first pivot at or below its floor (or not
    /// finite), if any; that lane's solution is then meaningless.
    ///
    /// The operations per lane are those of [`crate::dense::cholesky_upper`]
    /// without panels (pivot `j`: its square root, its reciprocal, the row
    /// scaled, the trailing upper triangle updated row by row) and of
    /// [`crate::dense::cholesky_solve_inv`] (forward then backward
    /// substitution, multiplying by the reciprocals).
    #[inline(always)]
    pub fn factor_solve<M: MulAdd>(&mut self) -> [Option<usize>; LANES] {
        let k = self.k;
        for l in self.used..LANES {
            for r in 0..k {
                for c in r..k {
                    self.a[r * k + c][l] = if r == c { 1.0 } else { 0.0 };
                }
                self.x[r][l] = 0.0;
                self.min_pivot[r][l] = 0.0;
            }
        }
        let mut failed = [None; LANES];
        let (a, inv) = (&mut self.a, &mut self.inv);
        for j in 0..k {
            let d = a[j * k + j];
            let floor = self.min_pivot[j];
            for l in 0..LANES {
                if failed[l].is_none() && (!d[l].is_finite() || d[l] <= floor[l]) {
                    failed[l] = Some(j);
                }
            }
            let mut s = [0.0; LANES];
            let mut rcp = [0.0; LANES];
            for l in 0..LANES {
                s[l] = d[l].sqrt();
                rcp[l] = 1.0 / s[l];
            }
            a[j * k + j] = s;
            inv[j] = rcp;
            for c in j + 1..k {
                let v = &mut a[j * k + c];
                for l in 0..LANES {
                    v[l] *= rcp[l];
                }
            }
            for r in j + 1..k {
                let f = a[j * k + r];
                for c in r..k {
                    let u = a[j * k + c];
                    let t = &mut a[r * k + c];
                    for l in 0..LANES {
                        t[l] = M::mul_add(-f[l], u[l], t[l]);
                    }
                }
            }
        }
        let x = &mut self.x;
        for p in 0..k {
            let mut y = x[p];
            for l in 0..LANES {
                y[l] *= inv[p][l];
            }
            x[p] = y;
            for m in p + 1..k {
                let u = a[p * k + m];
                let t = &mut x[m];
                for l in 0..LANES {
                    t[l] = M::mul_add(-y[l], u[l], t[l]);
                }
            }
        }
        for j in (0..k).rev() {
            let mut s = [0.0; LANES];
            for m in j + 1..k {
                let (u, v) = (a[j * k + m], x[m]);
                for l in 0..LANES {
                    s[l] = M::mul_add(u[l], v[l], s[l]);
                }
            }
            let t = &mut x[j];
            for l in 0..LANES {
                t[l] = (t[l] - s[l]) * inv[j][l];
            }
        }
        failed
    }

    /// The solution of lane `l` (after [`LaneSystems::factor_solve`]) into
    /// `out[..k]`.
    #[inline(always)]
    pub fn solution(&self, l: usize, out: &mut [f64]) {
        for (o, v) in out[..self.k].iter_mut().zip(&self.x) {
            *o = v[l];
        }
    }

    /// Free every lane.
    #[inline(always)]
    pub fn clear(&mut self) {
        self.used = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dense::{cholesky_solve_inv, cholesky_upper, Fused, Unfused};

    fn spd(k: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        let x: Vec<f64> = (0..3 * k * k).map(|_| next()).collect();
        let mut a = vec![0.0; k * k];
        for r in 0..k {
            for c in 0..k {
                a[r * k + c] = (0..3 * k).map(|t| x[t * k + r] * x[t * k + c]).sum::<f64>();
            }
            a[r * k + r] += 0.01;
        }
        let b = (0..k).map(|_| next()).collect();
        (a, b)
    }

    /// Each lane equals the unpanelled single-system path bit for bit, and
    /// solves its system, whatever the other lanes hold.
    fn lanes_match_single<M: MulAdd>() {
        for k in [1, 2, 5, 10, 16, 17] {
            for used in [1, 3, 8] {
                let mut sys = LaneSystems::new(k);
                let floors = vec![0.0; k];
                let mut inputs = Vec::new();
                for l in 0..used {
                    let (a, b) = spd(k, (k * 100 + l + used * 7) as u64);
                    assert_eq!(sys.push(&a, k, &b, &floors), l);
                    inputs.push((a, b));
                }
                let failed = sys.factor_solve::<M>();
                assert!(failed.iter().all(Option::is_none));
                for (l, (a, b)) in inputs.iter().enumerate() {
                    let mut got = vec![0.0; k];
                    sys.solution(l, &mut got);
                    // the single path, one pivot per panel
                    let mut u = a.clone();
                    let mut x = b.clone();
                    single::<M>(&mut u, k, &mut x);
                    assert_eq!(got, x, "k={k} used={used} lane {l}");
                    // and an independent reference: the residual is small
                    for r in 0..k {
                        let ax: f64 = (0..k).map(|c| a[r * k + c] * got[c]).sum();
                        assert!((ax - b[r]).abs() <= 1e-9 * (1.0 + b[r].abs()), "k={k}");
                    }
                    // the panelled path of the row solver agrees to rounding
                    let mut u = a.clone();
                    let mut x = b.clone();
                    cholesky_upper::<M>(&mut u, k, k, &floors).unwrap();
                    let inv: Vec<f64> = (0..k).map(|d| 1.0 / u[d * k + d]).collect();
                    cholesky_solve_inv::<M>(&u, &inv, k, k, &mut x);
                    for (g, w) in got.iter().zip(&x) {
                        assert!((g - w).abs() <= 1e-9 * (1.0 + w.abs()));
                    }
                }
                sys.clear();
                assert_eq!(sys.len(), 0);
            }
        }
    }

    /// The same operations on one system, written out plainly.
    fn single<M: MulAdd>(a: &mut [f64], k: usize, x: &mut [f64]) {
        let mut inv = vec![0.0; k];
        for j in 0..k {
            let s = a[j * k + j].sqrt();
            a[j * k + j] = s;
            inv[j] = 1.0 / s;
            for c in j + 1..k {
                a[j * k + c] *= inv[j];
            }
            for r in j + 1..k {
                let f = a[j * k + r];
                for c in r..k {
                    a[r * k + c] = M::mul_add(-f, a[j * k + c], a[r * k + c]);
                }
            }
        }
        for p in 0..k {
            x[p] *= inv[p];
            for m in p + 1..k {
                x[m] = M::mul_add(-x[p], a[p * k + m], x[m]);
            }
        }
        for j in (0..k).rev() {
            let mut s = 0.0;
            for m in j + 1..k {
                s = M::mul_add(a[j * k + m], x[m], s);
            }
            x[j] = (x[j] - s) * inv[j];
        }
    }

    #[test]
    fn lanes_match_the_single_system_path() {
        lanes_match_single::<Fused>();
        lanes_match_single::<Unfused>();
    }

    #[test]
    fn a_failing_lane_is_reported_and_leaves_the_others_intact() {
        let k = 4;
        let floors = vec![0.0; k];
        let (a, b) = spd(k, 3);
        let mut singular = a.clone();
        // row 2 = row 1: singular at pivot 2 (rounding may leave a tiny
        // positive pivot, so the floor is set just above zero for that lane)
        for c in 0..k {
            singular[2 * k + c] = singular[k + c];
            singular[c * k + 2] = singular[c * k + 1];
        }
        let mut not_finite = a.clone();
        not_finite[0] = f64::NAN;
        let mut sys = LaneSystems::new(k);
        sys.push(&a, k, &b, &floors);
        sys.push(&singular, k, &b, &[0.0, 0.0, 1e-9, 0.0]);
        sys.push(&not_finite, k, &b, &floors);
        sys.push(&a, k, &b, &floors);
        let failed = sys.factor_solve::<Fused>();
        assert_eq!(failed[..4], [None, Some(2), Some(0), None]);
        let (mut x0, mut x3) = (vec![0.0; k], vec![0.0; k]);
        sys.solution(0, &mut x0);
        sys.solution(3, &mut x3);
        assert_eq!(x0, x3);
        assert!(x0.iter().all(|v| v.is_finite()));
    }
}
