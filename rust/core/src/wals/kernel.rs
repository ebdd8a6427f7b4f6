//! The inner kernels of a WALS half-sweep: gathering the observed rows of the
//! fixed factor into a contiguous block `B` (row `t` is `sqrt(w_t) v_j`, and
//! the right-hand side `sum_t y_t v_j` is accumulated on the way), and the
//! blocked symmetric product `M += B^T B` (the normal matrix of one row)
//! folded into `f64`; plus the row dot products of the loss pass and the
//! `f64` Cholesky factorisation.
//!
//! Blocks are row-major with `kp` columns (`k` rounded up to a multiple of
//! 16, the padding held at zero), so every vector load is whole. The product
//! is computed on the upper triangle in tiles of 8 rows by 16 to 48 columns
//! held in registers (16-column granularity: the 16 x 16 diagonal blocks are
//! computed whole), summed in `f32` over the block and added into the `f64`
//! normal matrix once per tile. Each tile sum runs over the block's rows in
//! order, so the result does not depend on threads.
//!
//! Three instruction sets: AVX-512 (intrinsics), AVX2 + FMA and a portable
//! version (the same plain Rust, compiled for the respective target
//! features). They round differently; a given machine always takes the same
//! one (see [`Isa::detect`]).

use crate::dense::{Fused, MulAdd, Unfused};

/// Width of the column padding of the blocks.
pub const PAD: usize = 16;

/// How far ahead the gather prefetches, in 16-lane vectors of work: 64
/// rows of one vector (k <= 16), fewer longer rows (see [`gather_ahead`]).
pub(crate) const PREFETCH_VECTORS: usize = 64;

/// How many rows ahead the gather of rows of `16 ch` values prefetches:
/// about [`PREFETCH_VECTORS`] vectors of work, at least 16 rows (a short row
/// is a few cycles of work, and a read from L3 or memory takes hundreds).
const fn gather_ahead(ch: usize) -> usize {
    let rows = PREFETCH_VECTORS / ch;
    if rows < 16 {
        16
    } else {
        rows
    }
}

/// The plain gather prefetches only from a fixed factor larger than this
/// (past L2 and a core's share of L3): from one the caches hold it gained
/// nothing, and the prefetches cost time (AVX2 `cg` half-sweeps at k = 64
/// from a 1 MB factor: 115-123 ms against 110-112 without them).
const PLAIN_PREFETCH_MIN_BYTES: usize = 4 << 20;

/// Prefetch a cache line into L2 (`_MM_HINT_T2`, a hint: any address is
/// harmless, nothing is read architecturally). Where a gather's random
/// reads wait on memory, prefetching them into L2 rather than L1 took fewer
/// cycles on the Zen 4 this was measured on (the items gather of `cg` at k
/// = 128: 15-25% fewer with AVX-512, where `_MM_HINT_NTA` was as slow as
/// L1; the plain gather, which prefetched nothing, half as many).
#[inline(always)]
pub(crate) fn prefetch_l2(p: *const f32) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch does not access memory architecturally (no fault on
    // any address); SSE is part of the x86_64 baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T2 }>(p as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Prefetch into L2 ([`prefetch_l2`]) the cache lines of the row of `k`
/// values at `row`: one every 16 values, and the line of its last value
/// unless the row is whole aligned lines (`whole_lines`).
#[inline(always)]
fn prefetch_row_l2(row: *const f32, k: usize, whole_lines: bool) {
    let mut c = 0;
    while c < k {
        prefetch_l2(row.wrapping_add(c));
        c += PAD;
    }
    if !whole_lines {
        prefetch_l2(row.wrapping_add(k - 1));
    }
}

/// `k` rounded up to a multiple of [`PAD`].
pub fn padded(k: usize) -> usize {
    k.div_ceil(PAD) * PAD
}

/// The instruction set the WALS kernels run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512F (16 `f32` lanes, 32 registers), with FMA.
    Avx512,
    /// AVX2 with FMA (8 lanes), plain Rust vectorised by the compiler.
    Avx2,
    /// No assumption beyond the baseline target.
    Portable,
}

impl Isa {
    /// The widest instruction set this CPU supports.
    pub fn detect() -> Isa {
        if Isa::Avx512.available() {
            Isa::Avx512
        } else if Isa::Avx2.available() {
            Isa::Avx2
        } else {
            Isa::Portable
        }
    }

    /// Whether this CPU can run `self`.
    pub fn available(self) -> bool {
        match self {
            Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// Lower-case name (`avx512`, `avx2`, `portable`).
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512",
            Isa::Avx2 => "avx2",
            Isa::Portable => "portable",
        }
    }
}

/// The operations a row solver needs from an instruction set. Implementations
/// are zero-sized; the row solver is instantiated once per implementation
/// inside a function compiled with the matching target features. Each
/// method a kernel with target features runs (and every function and
/// closure the row solver calls) must be `#[inline(always)]` or carry those
/// features itself: code left out of line is built for the baseline target,
/// where a `mul_add` of [`Fused`] is a call to the software `fma` (the AVX2
/// half-sweeps were 7 to 26 times slower for it;
/// `tests/test_core_binding.py` checks the extension calls none). The
/// defaults below that are not forced inline ([`Kernel::gather_syrk`],
/// [`Kernel::cholesky`], [`Kernel::solve`]) are so for the portable kernel
/// (inlined, its half-sweeps at k = 10 took about 17% longer);
/// [`Avx2Kernel`] forces them.
pub(crate) trait Kernel {
    /// How the generic code multiplies and adds.
    type Arith: MulAdd;

    /// For each entry `t` (fixed row `j = idx[t]`): `g[t] = sw[t] v_j` (rows
    /// of `kp` values; columns `k..kp` are left or written zero) and `rhs +=
    /// y[t] v_j`. Indices must be in range (checked by the caller).
    fn gather(g: &Gather<'_>, e: &Entries<'_>, out: &mut Gathered<'_>);

    /// `p[t] = raw[t] . u` for `t < nb` (`u` has `kp` values, zero padded).
    fn dots(raw: &[f32], nb: usize, kp: usize, u: &[f32], p: &mut [f32]);

    /// `q[..kp] = sum_t y[t] raw[t]` over the `nb` rows of `raw` (`kp` values
    /// each), in `f32`, in a fixed order. This one takes 16 columns at a
    /// time, their sums in a local array (in registers; kept in `q` they went
    /// through memory from row to row, which made the AVX2 `cg` at k = 10
    /// about 1.6 times slower), each lane in row order.
    #[inline(always)]
    fn axpys(raw: &[f32], nb: usize, kp: usize, y: &[f32], q: &mut [f32]) {
        for (c, qc) in q[..kp].chunks_exact_mut(PAD).enumerate() {
            let mut acc = [0.0f32; PAD];
            for (t, &yt) in y[..nb].iter().enumerate() {
                let x: &[f32; PAD] = raw[t * kp + c * PAD..t * kp + c * PAD + PAD]
                    .try_into()
                    .expect("a whole vector");
                for (a, &xl) in acc.iter_mut().zip(x) {
                    *a = Self::Arith::mul_add32(yt, xl, *a);
                }
            }
            qc.copy_from_slice(&acc);
        }
    }

    /// [`Kernel::dots`] into `p[..nb]` and then [`Kernel::axpys`] with `y =
    /// p` into `q`: the same values, bit for bit; a kernel may interleave
    /// the two passes so that each row is read from L1 the second time.
    /// `resident` says whether `raw` is in the caches (a kernel may read it
    /// in another order then).
    #[inline(always)]
    fn dots_axpys(
        raw: &[f32],
        nb: usize,
        kp: usize,
        u: &[f32],
        p: &mut [f32],
        q: &mut [f32],
        _resident: bool,
    ) {
        Self::dots(raw, nb, kp, u, p);
        Self::axpys(raw, nb, kp, p, q);
    }

    /// The loss sums of a block in eight `f64` lanes: entry `t` goes to lane
    /// `t % 8`, `obs[l] += (w_t e_t) e_t` and `sq[l] += p_t p_t` with `e_t =
    /// a_t - p_t`, in entry order (so every implementation gives the same
    /// bits). `p`, `w` and `a` have the same length.
    #[inline(always)]
    fn loss_sums(p: &[f32], w: &[f32], a: &[f32], obs: &mut [f64; 8], sq: &mut [f64; 8]) {
        let (pc, wc, ac) = (p.chunks_exact(8), w.chunks_exact(8), a.chunks_exact(8));
        let tail = (pc.remainder(), wc.remainder(), ac.remainder());
        for ((pt, wt), at) in pc.zip(wc).zip(ac) {
            for l in 0..8 {
                let (p64, e) = (pt[l] as f64, at[l] as f64 - pt[l] as f64);
                obs[l] += wt[l] as f64 * e * e;
                sq[l] += p64 * p64;
            }
        }
        for (l, ((&pt, &wt), &at)) in tail.0.iter().zip(tail.1).zip(tail.2).enumerate() {
            let (p64, e) = (pt as f64, at as f64 - pt as f64);
            obs[l] += wt as f64 * e * e;
            sq[l] += p64 * p64;
        }
    }

    /// `out[a][b] = base[a][b] + sum_t wtd[t][a] raw[t][b]` (or `out +=` when
    /// `base` is `None`) over the tile cover of the upper triangle: rows
    /// `a < k'` and columns from `a` rounded down to a multiple of 16 (8
    /// with AVX-512 when `kp > 16`) up to `kp`, where `k'` is `k` when `kp ==
    /// 16` and `kp` otherwise; other entries are left as they are (the
    /// Cholesky kernels read no column left of the row rounded down to a
    /// multiple of 8). `out` and `base` are `kp x kp` row-major.
    fn syrk(blk: &Block<'_>, out: &mut [f64], base: Option<&[f64]>);

    /// `t[a][c] = raw[c][a]` for `a < k` and `c < n`, and zero for `n <= c <
    /// np`: the `n x kp` block `raw` transposed into `t` (`k x np`, row-major,
    /// `np = padded(n)`).
    #[inline(always)]
    fn transpose(raw: &[f32], n: usize, kp: usize, k: usize, t: &mut [f32]) {
        let np = padded(n);
        assert!(k <= kp && raw.len() >= n * kp && t.len() >= k * np);
        for (a, row) in t[..k * np].chunks_exact_mut(np).enumerate() {
            for (c, d) in row[..n].iter_mut().enumerate() {
                *d = raw[c * kp + a];
            }
            row[n..].fill(0.0);
        }
    }

    /// `Y Y^T` of the `n` gathered rows of `raw` (`kp` values each, zero
    /// from `k` on) into `out` (`np x np` row-major, `np = padded(n)`), with
    /// products in `f32`: in each row `c < n`, the columns from `c` rounded
    /// down to a multiple of 8 to `n`, and zeros from `n` to `np` (what
    /// [`Kernel::cholesky`] reads of an `n x n` matrix with leading dimension
    /// `np`); other entries may be written or left. `t` is scratch. The
    /// lines of `upcoming` are prefetched meanwhile. This one transposes
    /// `raw` ([`Kernel::transpose`]) and multiplies ([`Kernel::syrk`] over the
    /// depth `k`).
    #[inline(always)]
    fn rows_gram(
        raw: &[f32],
        n: usize,
        k: usize,
        kp: usize,
        t: &mut Vec<f32>,
        upcoming: Upcoming<'_>,
        out: &mut [f64],
    ) {
        let np = padded(n);
        if t.len() < k * np {
            t.resize(kp * kp.max(np), 0.0);
        }
        let t = &mut t[..k * np];
        Self::transpose(raw, n, kp, k, t);
        let blk = Block {
            raw: t,
            wtd: t,
            nb: k,
            k: n,
            kp: np,
            prefetch: upcoming,
        };
        // syrk adds into the 16-column tiles from each row's diagonal on
        for (c, row) in out[..np * np].chunks_exact_mut(np).enumerate() {
            row[c & !(PAD - 1)..].fill(0.0);
        }
        Self::syrk(&blk, out, None);
    }

    /// `out[..k] = T^T x` for a lower-triangular `T` (`kp x kp` by rows, zero
    /// above the diagonal and beyond `k`): [`super::woodbury::lower_t_mul`].
    #[inline(always)]
    fn lower_t_mul(t: &[f64], k: usize, kp: usize, x: &[f64], out: &mut [f64]) {
        super::woodbury::lower_t_mul::<Self::Arith>(t, k, kp, x, out)
    }

    /// [`Kernel::lower_t_mul`] of every row of `x` (rows `ldx >= k` apart,
    /// `x.len()` a multiple of `ldx`; `f32` values are widened exactly) into
    /// the rows of `out` (`kp` apart; what follows `k` in a row may be
    /// written), `T` read once for several rows where a kernel can. This one
    /// takes the rows one by one.
    #[inline(always)]
    fn lower_t_mul_rows<X: Copy + Into<f64>>(
        t: &[f64],
        k: usize,
        kp: usize,
        x: &[X],
        ldx: usize,
        out: &mut [f64],
    ) {
        let mut row = vec![0.0f64; k];
        for (xr, o) in x.chunks_exact(ldx).zip(out.chunks_exact_mut(kp)) {
            for (d, &v) in row.iter_mut().zip(xr) {
                *d = v.into();
            }
            Self::lower_t_mul(t, k, kp, &row, o);
        }
    }

    /// [`Kernel::gather`] of a block into `out`, then [`Kernel::syrk`] of
    /// that block (`k` columns, nothing to prefetch) into `a`. A kernel may
    /// do both in one pass: the same block and right-hand side, and the same
    /// normal matrix up to the rounding of its products.
    fn gather_syrk(
        g: &Gather<'_>,
        e: &Entries<'_>,
        out: &mut Gathered<'_>,
        k: usize,
        a: &mut [f64],
        base: Option<&[f64]>,
    ) {
        gather_then_syrk::<Self>(g, e, out, k, a, base)
    }

    /// [`crate::dense::cholesky_upper`] of the leading `n x n` block of `a`
    /// (leading dimension `ld`). Requires `ld >= n` rounded up to a multiple
    /// of 8 and, in each of the first `n` rows, zeros in the columns from `n`
    /// to that multiple. The strict lower triangle within 8 columns of the
    /// diagonal may be overwritten (the AVX-512 kernel keeps there what its
    /// [`Kernel::solve`] reads), so `solve` takes this kernel's factor only.
    fn cholesky(a: &mut [f64], n: usize, ld: usize, min_pivot: &[f64]) -> Result<(), usize> {
        crate::dense::cholesky_upper::<Self::Arith>(a, n, ld, min_pivot)
    }

    /// [`crate::dense::cholesky_solve_inv`]: `x[..n] = (U^T U)^-1 x[..n]` with
    /// the factor of [`Kernel::cholesky`] (same layout and padding
    /// requirements) and `inv` the reciprocals of its diagonal; `x` holds at
    /// least `n` rounded up to a multiple of 8 values (the padding is
    /// overwritten with zeros).
    fn solve(u: &[f64], inv: &[f64], n: usize, ld: usize, x: &mut [f64]) {
        crate::dense::cholesky_solve_inv::<Self::Arith>(u, inv, n, ld, x)
    }
}

/// [`Kernel::gather_syrk`] as two passes: the gather, then the product.
#[inline(always)]
fn gather_then_syrk<K: Kernel + ?Sized>(
    g: &Gather<'_>,
    e: &Entries<'_>,
    out: &mut Gathered<'_>,
    k: usize,
    a: &mut [f64],
    base: Option<&[f64]>,
) {
    K::gather(g, e, out);
    let blk = Block {
        raw: out.g,
        wtd: out.g,
        nb: e.idx.len(),
        k,
        kp: g.kp,
        prefetch: Upcoming::NONE,
    };
    K::syrk(&blk, a, base);
}

/// The fixed factor a gather reads from.
pub(crate) struct Gather<'a> {
    /// `n_fixed x k`, row-major.
    pub fixed: &'a [f32],
    pub k: usize,
    pub kp: usize,
}

impl Gather<'_> {
    /// Prefetch (into L1) the first cache line of the fixed rows `idx`, the
    /// first entries of the next row: a row's gather prefetches its own
    /// entries a fixed distance ahead, which leaves the first ones of every
    /// row to wait on memory unless they are requested while the previous
    /// row is solved. Changes no result; the indices need not be checked (a
    /// prefetch of any address is harmless).
    #[inline(always)]
    pub fn prefetch_rows(&self, idx: &[i32]) {
        #[cfg(target_arch = "x86_64")]
        for &j in idx {
            let p = self.fixed.as_ptr().wrapping_add(j as u32 as usize * self.k);
            // SAFETY: a prefetch does not access memory architecturally (no
            // fault on any address); SSE is part of the x86_64 baseline.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                    p as *const i8,
                )
            };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = idx;
    }
}

/// The entries of one row (a block of them): fixed rows `idx`, the square
/// roots `sw` of their weights in the normal matrix, and their coefficients
/// `y` in the right-hand side.
pub(crate) struct Entries<'a> {
    pub idx: &'a [i32],
    pub sw: &'a [f32],
    pub y: &'a [f32],
    /// The fixed rows gathered next from the same factor (the row's next
    /// block, or the next row's first entries; empty when unknown): a gather
    /// that prefetches a distance ahead of itself reads on into these near
    /// its end, so the next gather does not start by waiting on memory.
    /// Changes no result; the indices need not be checked (a prefetch of any
    /// address is harmless).
    pub ahead: &'a [i32],
}

impl Entries<'_> {
    /// The entry `on` of the row, or past its end the entry of
    /// [`Entries::ahead`] as far on (none beyond those).
    #[inline(always)]
    fn upcoming(&self, on: usize) -> Option<i32> {
        match on.checked_sub(self.idx.len()) {
            None => Some(self.idx[on]),
            Some(past) => self.ahead.get(past).copied(),
        }
    }
}

/// Where a gather writes: the block (`idx.len() x kp`) and the right-hand
/// side (`kp` values, accumulated).
pub(crate) struct Gathered<'a> {
    pub g: &'a mut [f32],
    pub rhs: &'a mut [f32],
}

impl Gathered<'_> {
    fn check(&self, g: &Gather<'_>, e: &Entries<'_>) {
        let n = e.idx.len();
        assert!(e.sw.len() == n && e.y.len() == n && self.rhs.len() >= g.kp);
        assert!(self.g.len() >= n * g.kp);
        assert!(g.kp == padded(g.k) && g.fixed.len().is_multiple_of(g.k));
    }
}

/// A gathered block of `nb` rows.
pub(crate) struct Block<'a> {
    pub raw: &'a [f32],
    pub wtd: &'a [f32],
    pub nb: usize,
    pub k: usize,
    pub kp: usize,
    /// The rows of the next gather, whose cache lines are prefetched (into
    /// L2) while the block is multiplied, so that its random reads overlap
    /// with this block's arithmetic.
    pub prefetch: Upcoming<'a>,
}

/// Rows of a fixed factor gathered next: `idx` of `fixed` (`k` values a
/// row). The indices need not be checked (a prefetch of any address is
/// harmless).
#[derive(Clone, Copy)]
pub(crate) struct Upcoming<'a> {
    pub fixed: &'a [f32],
    pub k: usize,
    pub idx: &'a [i32],
}

impl Upcoming<'_> {
    /// No rows.
    pub const NONE: Upcoming<'static> = Upcoming {
        fixed: &[],
        k: 1,
        idx: &[],
    };

    /// The cache lines of the rows, in order: for each row, the lines from
    /// the one holding its first value to the one holding its last.
    pub fn lines(&self) -> Lines<'_> {
        Lines {
            base: self.fixed.as_ptr() as usize,
            stride: self.k * 4,
            idx: self.idx,
            line: 1,
            last: 0,
        }
    }
}

/// A cursor over the cache lines of [`Upcoming`] rows, computed as they are
/// taken (one per product step: no list is written first). `Copy`, so that
/// a loop can take it into registers and hand it back after.
#[derive(Clone, Copy)]
pub(crate) struct Lines<'a> {
    base: usize,
    stride: usize,
    /// The rows not yet started.
    idx: &'a [i32],
    /// The next line of the current row, and its last (`line > last`: the
    /// row is done).
    line: usize,
    last: usize,
}

impl Iterator for Lines<'_> {
    type Item = usize;

    #[inline(always)]
    fn next(&mut self) -> Option<usize> {
        if self.line > self.last {
            let (&j, rest) = self.idx.split_first()?;
            self.idx = rest;
            let start = self
                .base
                .wrapping_add((j as u32 as usize).wrapping_mul(self.stride));
            self.line = start & !63;
            self.last = start.wrapping_add(self.stride - 1) & !63;
        }
        let line = self.line;
        self.line += 64;
        Some(line)
    }
}

impl Block<'_> {
    fn check(&self, out: &[f64], base: Option<&[f64]>) {
        assert!(self.kp.is_multiple_of(PAD) && self.k <= self.kp && self.k > 0);
        assert!(self.raw.len() >= self.nb * self.kp && self.wtd.len() >= self.nb * self.kp);
        assert!(out.len() >= self.kp * self.kp);
        if let Some(b) = base {
            assert!(b.len() >= self.kp * self.kp);
        }
    }
}

// ---------------------------------------------------------------- portable

/// Plain Rust kernels, generic over the multiply-add; vectorised by the
/// compiler for whatever target features the calling function enables.
pub(crate) struct Plain<M>(std::marker::PhantomData<M>);

/// Portable kernel on the baseline target (separate multiply and add).
pub(crate) type PortableKernel = Plain<Unfused>;

/// The same plain Rust compiled with AVX2 + FMA (`Plain<Fused>`), every
/// method inlined into the function with those features (see [`Kernel`]).
pub(crate) struct Avx2Kernel;

impl Kernel for Avx2Kernel {
    type Arith = Fused;

    #[inline(always)]
    fn gather(g: &Gather<'_>, e: &Entries<'_>, out: &mut Gathered<'_>) {
        Plain::<Fused>::gather(g, e, out)
    }

    #[inline(always)]
    fn dots(raw: &[f32], nb: usize, kp: usize, u: &[f32], p: &mut [f32]) {
        Plain::<Fused>::dots(raw, nb, kp, u, p)
    }

    #[inline(always)]
    fn syrk(blk: &Block<'_>, out: &mut [f64], base: Option<&[f64]>) {
        Plain::<Fused>::syrk(blk, out, base)
    }

    #[inline(always)]
    fn gather_syrk(
        g: &Gather<'_>,
        e: &Entries<'_>,
        out: &mut Gathered<'_>,
        k: usize,
        a: &mut [f64],
        base: Option<&[f64]>,
    ) {
        gather_then_syrk::<Self>(g, e, out, k, a, base)
    }

    #[inline(always)]
    fn cholesky(a: &mut [f64], n: usize, ld: usize, min_pivot: &[f64]) -> Result<(), usize> {
        crate::dense::cholesky_upper::<Fused>(a, n, ld, min_pivot)
    }

    #[inline(always)]
    fn solve(u: &[f64], inv: &[f64], n: usize, ld: usize, x: &mut [f64]) {
        crate::dense::cholesky_solve_inv::<Fused>(u, inv, n, ld, x)
    }
}

impl<M: MulAdd> Kernel for Plain<M> {
    type Arith = M;

    #[inline(always)]
    fn gather(g: &Gather<'_>, e: &Entries<'_>, out: &mut Gathered<'_>) {
        out.check(g, e);
        let (k, kp) = (g.k, g.kp);
        let rhs = &mut out.rhs[..k];
        let ahead = gather_ahead(kp / PAD);
        let far = g.fixed.len() * 4 > PLAIN_PREFETCH_MIN_BYTES;
        for (t, ((&j, &sw), &y)) in e.idx.iter().zip(e.sw).zip(e.y).enumerate() {
            // the row `ahead` entries on (into `e.ahead` near the end), from
            // a factor past [`PLAIN_PREFETCH_MIN_BYTES`]: random reads of a
            // factor larger than the caches wait on memory
            let next = if far { e.upcoming(t + ahead) } else { None };
            if let Some(j) = next {
                // wrapping: the entries ahead are not checked
                prefetch_row_l2(
                    g.fixed.as_ptr().wrapping_add(j as u32 as usize * k),
                    k,
                    false,
                );
            }
            let j = j as usize;
            let src = &g.fixed[j * k..j * k + k];
            for (d, s) in out.g[t * kp..t * kp + k].iter_mut().zip(src) {
                *d = sw * *s;
            }
            for (r, s) in rhs.iter_mut().zip(src) {
                *r = M::mul_add32(y, *s, *r);
            }
        }
    }

    #[inline(always)]
    fn dots(raw: &[f32], nb: usize, kp: usize, u: &[f32], p: &mut [f32]) {
        let u = &u[..kp];
        for (t, pt) in p[..nb].iter_mut().enumerate() {
            let row = &raw[t * kp..t * kp + kp];
            let mut acc = [0.0f32; PAD];
            for (rc, uc) in row.chunks_exact(PAD).zip(u.chunks_exact(PAD)) {
                for l in 0..PAD {
                    acc[l] = M::mul_add32(rc[l], uc[l], acc[l]);
                }
            }
            *pt = tree16(&acc);
        }
    }

    #[inline(always)]
    fn syrk(blk: &Block<'_>, out: &mut [f64], base: Option<&[f64]>) {
        blk.check(out, base);
        let kp = blk.kp;
        let rows = if kp == PAD { blk.k } else { kp };
        let mut a0 = 0;
        while a0 < rows {
            let mr = (rows - a0).min(4);
            let mut b0 = a0 & !(PAD - 1);
            while b0 < kp {
                match mr {
                    4 => plain_tile::<M, 4>(blk, a0, b0, out, base),
                    3 => plain_tile::<M, 3>(blk, a0, b0, out, base),
                    2 => plain_tile::<M, 2>(blk, a0, b0, out, base),
                    _ => plain_tile::<M, 1>(blk, a0, b0, out, base),
                }
                b0 += PAD;
            }
            a0 += mr;
        }
    }
}

/// The sum of 16 values in a fixed pairwise order.
#[inline(always)]
fn tree16(a: &[f32; PAD]) -> f32 {
    let mut h = [0.0f32; 8];
    for l in 0..8 {
        h[l] = a[l] + a[l + 8];
    }
    let q = [h[0] + h[4], h[1] + h[5], h[2] + h[6], h[3] + h[7]];
    (q[0] + q[2]) + (q[1] + q[3])
}

/// One tile: rows `a0..a0+MR`, columns `b0..b0+16`.
#[inline(always)]
fn plain_tile<M: MulAdd, const MR: usize>(
    blk: &Block<'_>,
    a0: usize,
    b0: usize,
    out: &mut [f64],
    base: Option<&[f64]>,
) {
    let kp = blk.kp;
    let mut acc = [[0.0f32; PAD]; MR];
    for t in 0..blk.nb {
        let r: &[f32; PAD] = blk.raw[t * kp + b0..t * kp + b0 + PAD]
            .try_into()
            .expect("a whole vector");
        let w = &blk.wtd[t * kp + a0..t * kp + a0 + MR];
        for (row, &x) in acc.iter_mut().zip(w) {
            for l in 0..PAD {
                row[l] = M::mul_add32(x, r[l], row[l]);
            }
        }
    }
    for (i, row) in acc.iter().enumerate() {
        let off = (a0 + i) * kp + b0;
        let src: [f64; PAD] = match base {
            Some(b) => b[off..off + PAD].try_into().expect("a whole vector"),
            None => out[off..off + PAD].try_into().expect("a whole vector"),
        };
        for l in 0..PAD {
            out[off + l] = src[l] + row[l] as f64;
        }
    }
}

// ---------------------------------------------------------------- AVX-512

/// AVX-512 kernels written with intrinsics (register tiles of 8 x 48).
#[cfg(target_arch = "x86_64")]
pub(crate) struct Avx512Kernel;

#[cfg(target_arch = "x86_64")]
impl Kernel for Avx512Kernel {
    type Arith = Fused;

    #[inline(always)]
    fn gather(g: &Gather<'_>, e: &Entries<'_>, out: &mut Gathered<'_>) {
        out.check(g, e);
        // SAFETY: this kernel is only used after `Isa::Avx512.available()`;
        // the block sizes are checked above and every index was checked
        // against the number of rows of `fixed` by the caller.
        unsafe {
            match g.kp / PAD {
                1 => avx512::gather::<1>(g, e, out),
                2 => avx512::gather::<2>(g, e, out),
                3 => avx512::gather::<3>(g, e, out),
                4 => avx512::gather::<4>(g, e, out),
                5 => avx512::gather::<5>(g, e, out),
                6 => avx512::gather::<6>(g, e, out),
                7 => avx512::gather::<7>(g, e, out),
                8 => avx512::gather::<8>(g, e, out),
                _ => {
                    // wide rows: the right-hand side lives in memory
                    Plain::<Fused>::gather(g, e, out)
                }
            }
        }
    }

    #[inline(always)]
    fn gather_syrk(
        g: &Gather<'_>,
        e: &Entries<'_>,
        out: &mut Gathered<'_>,
        k: usize,
        a: &mut [f64],
        base: Option<&[f64]>,
    ) {
        if g.kp != PAD {
            return gather_then_syrk::<Self>(g, e, out, k, a, base);
        }
        out.check(g, e);
        assert!((1..=PAD).contains(&k) && a.len() >= PAD * PAD);
        assert!(base.is_none_or(|b| b.len() >= PAD * PAD));
        let (o, b) = (
            a.as_mut_ptr(),
            base.map_or(std::ptr::null(), |b| b.as_ptr()),
        );
        macro_rules! fused {
            ($($mr:literal)*) => {
                match k {
                    // SAFETY: as for `gather`; sizes checked above.
                    $($mr => unsafe { avx512::gather_syrk16::<$mr>(g, e, out, o, b) },)*
                    _ => unreachable!("1 <= k <= 16 checked above"),
                }
            };
        }
        fused!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);
    }

    #[inline(always)]
    fn cholesky(a: &mut [f64], n: usize, ld: usize, min_pivot: &[f64]) -> Result<(), usize> {
        let n8 = n.div_ceil(8) * 8;
        assert!(ld >= n8 && min_pivot.len() >= n && (n == 0 || a.len() >= (n - 1) * ld + n8));
        // SAFETY: as for `gather`; sizes checked above.
        unsafe { avx512::cholesky(a, n, ld, min_pivot) }
    }

    #[inline(always)]
    fn solve(u: &[f64], inv: &[f64], n: usize, ld: usize, x: &mut [f64]) {
        let n8 = n.div_ceil(8) * 8;
        assert!(ld >= n8 && inv.len() >= n && x.len() >= n8);
        assert!(n == 0 || u.len() >= (n - 1) * ld + n8);
        // SAFETY: as for `gather`; sizes checked above.
        unsafe { avx512::solve(u, inv, n, ld, x) }
    }

    #[inline(always)]
    fn lower_t_mul(t: &[f64], k: usize, kp: usize, x: &[f64], out: &mut [f64]) {
        assert!(kp.is_multiple_of(PAD) && k <= kp && t.len() >= k * kp);
        assert!(x.len() >= k && out.len() >= k);
        // SAFETY: as for `gather`; sizes checked above (row b < k reads
        // columns a0..a0 + 16 <= kp).
        unsafe { avx512::lower_t_mul(t, k, kp, x, out) }
    }

    #[inline(always)]
    fn lower_t_mul_rows<X: Copy + Into<f64>>(
        t: &[f64],
        k: usize,
        kp: usize,
        x: &[X],
        ldx: usize,
        out: &mut [f64],
    ) {
        assert!(kp.is_multiple_of(PAD) && k <= kp && t.len() >= k * kp && k > 0);
        assert!(ldx >= k && x.len().is_multiple_of(ldx) && out.len() >= x.len() / ldx * kp);
        // SAFETY: as for `gather`; sizes checked above (row b < k reads
        // columns a0..a0 + 16 <= kp; row r of `out` is written up to kp).
        unsafe { avx512::lower_t_mul_rows(t, k, kp, x, ldx, out) }
    }

    #[inline(always)]
    fn transpose(raw: &[f32], n: usize, kp: usize, k: usize, t: &mut [f32]) {
        assert!(kp.is_multiple_of(PAD) && k <= kp && raw.len() >= n * kp);
        assert!(t.len() >= k * padded(n));
        // SAFETY: as for `gather`; sizes checked above.
        unsafe { avx512::transpose(raw, n, kp, k, t) }
    }

    #[inline(always)]
    fn rows_gram(
        raw: &[f32],
        n: usize,
        _k: usize,
        kp: usize,
        _t: &mut Vec<f32>,
        upcoming: Upcoming<'_>,
        out: &mut [f64],
    ) {
        let np = padded(n);
        assert!(kp.is_multiple_of(PAD) && raw.len() >= n * kp && out.len() >= n * np);
        // SAFETY: as for `gather`; sizes checked above.
        unsafe { avx512::rows_gram(raw, n, kp, out, upcoming.lines()) }
    }

    #[inline(always)]
    fn dots(raw: &[f32], nb: usize, kp: usize, u: &[f32], p: &mut [f32]) {
        assert!(raw.len() >= nb * kp && u.len() >= kp && p.len() >= nb && kp.is_multiple_of(PAD));
        // SAFETY: as for `gather`; sizes checked above.
        unsafe { avx512::dots(raw, nb, kp, u, p) }
    }

    #[inline(always)]
    fn syrk(blk: &Block<'_>, out: &mut [f64], base: Option<&[f64]>) {
        blk.check(out, base);
        // SAFETY: as for `gather`; the sizes are checked by `blk.check`.
        unsafe { avx512::syrk(blk, out, base) }
    }

    #[inline(always)]
    fn axpys(raw: &[f32], nb: usize, kp: usize, y: &[f32], q: &mut [f32]) {
        assert!(raw.len() >= nb * kp && y.len() >= nb && q.len() >= kp);
        assert!(kp.is_multiple_of(PAD) && kp > 0);
        // SAFETY: as for `gather`; sizes checked above.
        unsafe {
            match kp / PAD {
                1 => avx512::axpys::<1>(raw, nb, y, q),
                2 => avx512::axpys::<2>(raw, nb, y, q),
                3 => avx512::axpys::<3>(raw, nb, y, q),
                4 => avx512::axpys::<4>(raw, nb, y, q),
                5 => avx512::axpys::<5>(raw, nb, y, q),
                6 => avx512::axpys::<6>(raw, nb, y, q),
                7 => avx512::axpys::<7>(raw, nb, y, q),
                8 => avx512::axpys::<8>(raw, nb, y, q),
                // wide rows: the sums live in memory
                _ => Plain::<Fused>::axpys(raw, nb, kp, y, q),
            }
        }
    }

    #[inline(always)]
    fn dots_axpys(
        raw: &[f32],
        nb: usize,
        kp: usize,
        u: &[f32],
        p: &mut [f32],
        q: &mut [f32],
        resident: bool,
    ) {
        assert!(raw.len() >= nb * kp && u.len() >= kp && p.len() >= nb && q.len() >= kp);
        assert!(kp.is_multiple_of(PAD) && kp > 0);
        // SAFETY: as for `gather`; sizes checked above.
        unsafe {
            match kp / PAD {
                1 => avx512::dots_axpys::<1>(raw, nb, u, p, q, resident),
                2 => avx512::dots_axpys::<2>(raw, nb, u, p, q, resident),
                3 => avx512::dots_axpys::<3>(raw, nb, u, p, q, resident),
                4 => avx512::dots_axpys::<4>(raw, nb, u, p, q, resident),
                5 => avx512::dots_axpys::<5>(raw, nb, u, p, q, resident),
                6 => avx512::dots_axpys::<6>(raw, nb, u, p, q, resident),
                7 => avx512::dots_axpys::<7>(raw, nb, u, p, q, resident),
                8 => avx512::dots_axpys::<8>(raw, nb, u, p, q, resident),
                _ => {
                    avx512::dots(raw, nb, kp, u, p);
                    Plain::<Fused>::axpys(raw, nb, kp, p, q)
                }
            }
        }
    }

    #[inline(always)]
    fn loss_sums(p: &[f32], w: &[f32], a: &[f32], obs: &mut [f64; 8], sq: &mut [f64; 8]) {
        assert!(w.len() == p.len() && a.len() == p.len());
        // SAFETY: as for `gather`; the lengths are checked above.
        unsafe { avx512::loss_sums(p, w, a, obs, sq) }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use avx512::{tri_mul_rows, Triangle};

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{
        gather_ahead, padded, prefetch_row_l2, Block, Entries, Gather, Gathered, Lines, PAD,
    };
    use std::arch::x86_64::*;
    use std::ops::Range;

    /// The fused gather with `CH = kp / 16` right-hand-side accumulators
    /// held in registers.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn gather<const CH: usize>(
        g: &Gather<'_>,
        e: &Entries<'_>,
        out: &mut Gathered<'_>,
    ) {
        let (k, kp) = (g.k, g.kp);
        let fixed = g.fixed.as_ptr();
        let tail = k - (CH - 1) * PAD;
        let tail_mask: __mmask16 = if tail == PAD {
            0xFFFF
        } else {
            ((1u32 << tail) - 1) as u16
        };
        let gp = out.g.as_mut_ptr();
        let idx = e.idx;
        let n = idx.len();
        // rows of whole aligned cache lines (the padded copy for k <= 16)
        // need no prefetch of their last value's line
        let whole_lines = k == CH * PAD && (fixed as usize).is_multiple_of(64);
        let mut rhs = [_mm512_setzero_ps(); CH];
        for t in 0..n {
            // the row `gather_ahead(CH)` entries on (into the next gather's
            // entries near the end), into L2 ([`prefetch_l2`]): random reads
            // of a factor larger than the caches wait on memory, and the loop
            // itself leaves too few of them in flight
            if let Some(j) = e.upcoming(t + gather_ahead(CH)) {
                // wrapping: the entries ahead are not checked
                prefetch_row_l2(fixed.wrapping_add(j as u32 as usize * k), k, whole_lines);
            }
            let j = *idx.get_unchecked(t) as usize;
            let y = _mm512_set1_ps(*e.y.get_unchecked(t));
            let ws = _mm512_set1_ps(*e.sw.get_unchecked(t));
            let src = fixed.add(j * k);
            for (c, r) in rhs.iter_mut().enumerate() {
                let m = if c + 1 == CH { tail_mask } else { 0xFFFF };
                let v = _mm512_maskz_loadu_ps(m, src.add(PAD * c));
                _mm512_storeu_ps(gp.add(t * kp + PAD * c), _mm512_mul_ps(v, ws));
                *r = _mm512_fmadd_ps(y, v, *r);
            }
        }
        let rh = out.rhs.as_mut_ptr();
        for (c, r) in rhs.iter().enumerate() {
            _mm512_storeu_ps(
                rh.add(PAD * c),
                _mm512_add_ps(_mm512_loadu_ps(rh.add(PAD * c)), *r),
            );
        }
    }

    /// [`gather::<1>`] and the `MR x 16` tile of [`syrk`] (`kp = 16`, `MR =
    /// k`) in one pass: each entry's row is scaled, stored, added into the
    /// right-hand side and into the tile's sums at once, so the random reads
    /// of the gather overlap with the multiply-adds instead of preceding
    /// them. The block and right-hand side are the gather's bit for bit; the
    /// tile sums `v_r (sqrt(w) (sqrt(w) v))` with `v_r` broadcast from the
    /// fixed row. Broadcasting the scaled value just stored, as the two
    /// passes do, was no faster than them when the compiler took it from the
    /// register (two shuffles a broadcast) and 10% slower when forced to load
    /// it (waiting on store-to-load forwarding). The tile is added to `base`
    /// (or to `a` when `base` is null).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn gather_syrk16<const MR: usize>(
        g: &Gather<'_>,
        e: &Entries<'_>,
        out: &mut Gathered<'_>,
        a: *mut f64,
        base: *const f64,
    ) {
        let k = g.k;
        let fixed = g.fixed.as_ptr();
        let tail_mask: __mmask16 = if k == PAD {
            0xFFFF
        } else {
            ((1u32 << k) - 1) as u16
        };
        let gp = out.g.as_mut_ptr();
        let idx = e.idx;
        let n = idx.len();
        let whole_lines = k == PAD && (fixed as usize).is_multiple_of(64);
        let mut rhs = _mm512_setzero_ps();
        let mut acc = [_mm512_setzero_ps(); MR];
        for t in 0..n {
            if t + gather_ahead(1) < n {
                let ahead = fixed.add(*idx.get_unchecked(t + gather_ahead(1)) as usize * k);
                _mm_prefetch::<_MM_HINT_T0>(ahead as *const i8);
                if !whole_lines {
                    _mm_prefetch::<_MM_HINT_T0>(ahead.add(k - 1) as *const i8);
                }
            }
            let j = *idx.get_unchecked(t) as usize;
            let y = _mm512_set1_ps(*e.y.get_unchecked(t));
            let ws = _mm512_set1_ps(*e.sw.get_unchecked(t));
            let src = fixed.add(j * k);
            let v = _mm512_maskz_loadu_ps(tail_mask, src);
            let x = _mm512_mul_ps(v, ws);
            _mm512_storeu_ps(gp.add(t * PAD), x);
            rhs = _mm512_fmadd_ps(y, v, rhs);
            let z = _mm512_mul_ps(x, ws);
            for (r, s) in acc.iter_mut().enumerate() {
                *s = _mm512_fmadd_ps(_mm512_set1_ps(*src.add(r)), z, *s);
            }
        }
        let rh = out.rhs.as_mut_ptr();
        _mm512_storeu_ps(rh, _mm512_add_ps(_mm512_loadu_ps(rh), rhs));
        for (r, s) in acc.iter().enumerate() {
            flush16(a, base, r * PAD, *s);
        }
    }

    /// Add the 16 `f32` sums `s` to `base[off..off + 16]` (or to `out` there
    /// when `base` is null) in `f64`, into `out[off..off + 16]`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn flush16(out: *mut f64, base: *const f64, off: usize, s: __m512) {
        let lo = _mm512_cvtps_pd(_mm512_castps512_ps256(s));
        let hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(
            _mm512_castps_pd(s),
        )));
        let src = if base.is_null() {
            out.add(off) as *const f64
        } else {
            base.add(off)
        };
        _mm512_storeu_pd(out.add(off), _mm512_add_pd(_mm512_loadu_pd(src), lo));
        _mm512_storeu_pd(
            out.add(off + 8),
            _mm512_add_pd(_mm512_loadu_pd(src.add(8)), hi),
        );
    }

    /// Whether the axpys of rows of `16 CH` values keep two sets of sums (even
    /// and odd rows, added at the end): with fewer than 5 vectors a row, one
    /// set would wait on its own multiply-adds (4 cycles) from row to row;
    /// with more, the row's own multiply-adds cover that wait, and the second
    /// set's registers would crowd out the 16 dot products of
    /// [`dots_axpys`] (the two sets and the column-chunk order together took
    /// 7% longer than one set at k = 128; one set alone gained nothing).
    const fn two_sets(ch: usize) -> bool {
        ch <= 4
    }

    /// Whether [`dots_axpys`] on rows of `16 ch` values interleaves a group's
    /// axpys with the next group's dot products. Measured per row against
    /// the group's axpys right after its dot products: 3-10% less time with 8
    /// vectors a row (k = 128), the same or up to 4% more with 5 to 7, and
    /// 20-80% more with 1 to 4 (whose two sets of sums leave too few
    /// registers).
    const fn interleaved(ch: usize) -> bool {
        ch == 8
    }

    /// The sums `q += y_t x_t` of [`axpys`] over rows of `16 CH` values, in
    /// registers: in two sets where [`two_sets`] says (even and odd rows,
    /// added at the end), else in one, in row order.
    struct AxpySums<const CH: usize> {
        even: [__m512; CH],
        odd: [__m512; CH],
    }

    impl<const CH: usize> AxpySums<CH> {
        #[target_feature(enable = "avx512f")]
        #[inline]
        fn new() -> Self {
            AxpySums {
                even: [_mm512_setzero_ps(); CH],
                odd: [_mm512_setzero_ps(); CH],
            }
        }

        /// Rows `t` and `t + 1` of `r` (rows `16 CH` apart), times `y0` and
        /// `y1`.
        #[target_feature(enable = "avx512f")]
        #[inline]
        #[allow(clippy::needless_range_loop)] // `c` indexes both sets and the row
        unsafe fn pair(&mut self, r: *const f32, t: usize, y0: f32, y1: f32) {
            let kp = CH * PAD;
            let (y0, y1) = (_mm512_set1_ps(y0), _mm512_set1_ps(y1));
            for c in 0..CH {
                let e = &mut self.even[c];
                *e = _mm512_fmadd_ps(y0, _mm512_loadu_ps(r.add(t * kp + PAD * c)), *e);
                let second = if two_sets(CH) {
                    &mut self.odd[c]
                } else {
                    &mut self.even[c]
                };
                *second =
                    _mm512_fmadd_ps(y1, _mm512_loadu_ps(r.add((t + 1) * kp + PAD * c)), *second);
            }
        }

        /// Pairs `pairs` (of 8) of the group of 16 rows of `r` at `group`
        /// (none: nothing), times their values in `y`.
        #[target_feature(enable = "avx512f")]
        #[inline]
        unsafe fn pending(
            &mut self,
            r: *const f32,
            y: *const f32,
            group: Option<usize>,
            pairs: Range<usize>,
        ) {
            if let Some(s) = group {
                for t in pairs.map(|j| s + 2 * j) {
                    self.pair(r, t, *y.add(t), *y.add(t + 1));
                }
            }
        }

        /// Row `t` of `r` alone (the last of an odd count), times `y0`.
        #[target_feature(enable = "avx512f")]
        #[inline]
        unsafe fn one(&mut self, r: *const f32, t: usize, y0: f32) {
            let kp = CH * PAD;
            let y0 = _mm512_set1_ps(y0);
            for (c, e) in self.even.iter_mut().enumerate() {
                *e = _mm512_fmadd_ps(y0, _mm512_loadu_ps(r.add(t * kp + PAD * c)), *e);
            }
        }

        /// The sums into `q[..16 CH]`.
        #[target_feature(enable = "avx512f")]
        #[inline]
        unsafe fn store(&self, q: *mut f32) {
            for (c, (e, o)) in self.even.iter().zip(&self.odd).enumerate() {
                _mm512_storeu_ps(q.add(PAD * c), _mm512_add_ps(*e, *o));
            }
        }
    }

    /// The dot product of row `t` of `r` (rows `kp` apart) with `u`, as 16
    /// lane sums: the first chunk's products, then each further chunk
    /// multiply-added in order ([`dots`] and [`dots_axpys`] alike).
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn row_dot(r: *const f32, u: *const f32, kp: usize, t: usize) -> __m512 {
        let mut acc = _mm512_mul_ps(_mm512_loadu_ps(r.add(t * kp)), _mm512_loadu_ps(u));
        for c in 1..kp / PAD {
            acc = _mm512_fmadd_ps(
                _mm512_loadu_ps(r.add(t * kp + PAD * c)),
                _mm512_loadu_ps(u.add(PAD * c)),
                acc,
            );
        }
        acc
    }

    /// [`super::Kernel::axpys`] for `kp = 16 CH`, with the sums in registers
    /// ([`AxpySums`]).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn axpys<const CH: usize>(raw: &[f32], nb: usize, y: &[f32], q: &mut [f32]) {
        let r = raw.as_ptr();
        let mut sums = AxpySums::<CH>::new();
        let mut t = 0;
        while t + 2 <= nb {
            sums.pair(r, t, *y.get_unchecked(t), *y.get_unchecked(t + 1));
            t += 2;
        }
        if t < nb {
            sums.one(r, t, *y.get_unchecked(t));
        }
        sums.store(q.as_mut_ptr());
    }

    /// [`super::Kernel::dots_axpys`] for `kp = 16 CH`, by groups of 16 rows:
    /// the dot products of a group as [`dots`] computes them, and the group's
    /// axpys (from L1) into the sums of [`axpys`], in the same order, so the
    /// results are those of the two separate passes. Where [`interleaved`]
    /// says, a group's axpys go with the next group's dot products (two rows
    /// after each column chunk, or after each row's dot product when
    /// streaming), so that the multiply-adds of both are in flight together.
    /// With `resident` (the block in L2) the group's dot
    /// products go column chunk by column chunk, loading each chunk of `u`
    /// once for the 16 rows instead of once a row (the users half-sweep of
    /// `cg` at k = 128: 7-9% less time in the block passes); a block
    /// streamed from further away is read row by row, in the order the
    /// hardware prefetcher follows (column chunk by column chunk it took 10%
    /// longer there).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn dots_axpys<const CH: usize>(
        raw: &[f32],
        nb: usize,
        u: &[f32],
        p: &mut [f32],
        q: &mut [f32],
        resident: bool,
    ) {
        let kp = CH * PAD;
        let (r, up, pp) = (raw.as_ptr(), u.as_ptr(), p.as_mut_ptr());
        let mut sums = AxpySums::<CH>::new();
        // the group whose axpys are still to do
        let mut pending = None;
        let mut t = 0;
        while t + 16 <= nb {
            let mut x = [_mm512_setzero_ps(); 16];
            if resident {
                // column chunk by column chunk, each chunk of `u` loaded once
                // for the 16 rows (the same sums as `row_dot`, in its order),
                // the pending pairs spread over the chunks
                let u0 = _mm512_loadu_ps(up);
                for (i, xi) in x.iter_mut().enumerate() {
                    *xi = _mm512_mul_ps(_mm512_loadu_ps(r.add((t + i) * kp)), u0);
                }
                sums.pending(r, pp, pending, 0..8 / CH);
                for c in 1..CH {
                    let uc = _mm512_loadu_ps(up.add(PAD * c));
                    for (i, xi) in x.iter_mut().enumerate() {
                        let v = _mm512_loadu_ps(r.add((t + i) * kp + PAD * c));
                        *xi = _mm512_fmadd_ps(v, uc, *xi);
                    }
                    sums.pending(r, pp, pending, c * 8 / CH..(c + 1) * 8 / CH);
                }
            } else {
                for (i, xi) in x.iter_mut().enumerate() {
                    *xi = row_dot(r, up, kp, t + i);
                    if i % 2 == 1 {
                        sums.pending(r, pp, pending, i / 2..i / 2 + 1);
                    }
                }
            }
            _mm512_storeu_ps(pp.add(t), hsum16(&x));
            if interleaved(CH) {
                pending = Some(t);
            } else {
                sums.pending(r, pp, Some(t), 0..8);
            }
            t += 16;
        }
        sums.pending(r, pp, pending, 0..8);
        let rest = t;
        while t < nb {
            *pp.add(t) = _mm512_reduce_add_ps(row_dot(r, up, kp, t));
            t += 1;
        }
        t = rest;
        while t + 2 <= nb {
            sums.pair(r, t, *pp.add(t), *pp.add(t + 1));
            t += 2;
        }
        if t < nb {
            sums.one(r, t, *pp.add(t));
        }
        sums.store(q.as_mut_ptr());
    }

    /// [`super::Kernel::loss_sums`] with one `f64` vector per sum; the last
    /// partial group of eight is loaded masked (zeros add nothing).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn loss_sums(
        p: &[f32],
        w: &[f32],
        a: &[f32],
        obs: &mut [f64; 8],
        sq: &mut [f64; 8],
    ) {
        let n = p.len();
        let (pp, wp, ap) = (p.as_ptr(), w.as_ptr(), a.as_ptr());
        let mut o = _mm512_loadu_pd(obs.as_ptr());
        let mut q = _mm512_loadu_pd(sq.as_ptr());
        let mut t = 0;
        // masked 512-bit loads (AVX-512F) of which the low 8 lanes are used:
        // the 256-bit masked load needs AVX-512VL, and without it is a call
        let half = |x: *const f32, m: __mmask16| {
            _mm512_cvtps_pd(_mm512_castps512_ps256(_mm512_maskz_loadu_ps(m, x)))
        };
        let step = |o: &mut __m512d, q: &mut __m512d, m: __mmask16, t: usize| {
            let p8 = half(pp.add(t), m);
            let w8 = half(wp.add(t), m);
            let a8 = half(ap.add(t), m);
            let e = _mm512_sub_pd(a8, p8);
            *o = _mm512_add_pd(*o, _mm512_mul_pd(_mm512_mul_pd(w8, e), e));
            *q = _mm512_add_pd(*q, _mm512_mul_pd(p8, p8));
        };
        while t + 8 <= n {
            step(&mut o, &mut q, 0xFF, t);
            t += 8;
        }
        if t < n {
            step(&mut o, &mut q, ((1u32 << (n - t)) - 1) as u16, t);
        }
        _mm512_storeu_pd(obs.as_mut_ptr(), o);
        _mm512_storeu_pd(sq.as_mut_ptr(), q);
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn dots(raw: &[f32], nb: usize, kp: usize, u: &[f32], p: &mut [f32]) {
        let (r, up) = (raw.as_ptr(), u.as_ptr());
        let mut t = 0;
        while t + 16 <= nb {
            let mut x = [_mm512_setzero_ps(); 16];
            for (i, xi) in x.iter_mut().enumerate() {
                *xi = row_dot(r, up, kp, t + i);
            }
            _mm512_storeu_ps(p.as_mut_ptr().add(t), hsum16(&x));
            t += 16;
        }
        while t < nb {
            *p.get_unchecked_mut(t) = _mm512_reduce_add_ps(row_dot(r, up, kp, t));
            t += 1;
        }
    }

    /// [`super::Kernel::lower_t_mul`] by panels of 16 columns (`kp` is a
    /// multiple of 16), each summed over its rows `b` in four interleaved
    /// partial sums (`b mod 4`, added as `(s0 + s1) + (s2 + s3)`) held in
    /// eight registers: eight chains of multiply-adds in flight, where the
    /// portable version's axpys read and write `out` once per row of `T` (the
    /// users half-sweep of `cg` at k = 128 on the ML-20M shape: 3,700-3,830
    /// Mcycles with this one, 4,060 with the portable one).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn lower_t_mul(t: &[f64], k: usize, kp: usize, x: &[f64], out: &mut [f64]) {
        let tp = t.as_ptr();
        let mut a0 = 0;
        while a0 < k {
            let mut s = [[_mm512_setzero_pd(); 2]; 4];
            let mut b = a0;
            while b + 4 <= k {
                for (q, sq) in s.iter_mut().enumerate() {
                    let xb = _mm512_set1_pd(*x.get_unchecked(b + q));
                    let r = tp.add((b + q) * kp + a0);
                    sq[0] = _mm512_fmadd_pd(xb, _mm512_loadu_pd(r), sq[0]);
                    sq[1] = _mm512_fmadd_pd(xb, _mm512_loadu_pd(r.add(8)), sq[1]);
                }
                b += 4;
            }
            for (sq, bb) in s.iter_mut().zip(b..k) {
                let xb = _mm512_set1_pd(*x.get_unchecked(bb));
                let r = tp.add(bb * kp + a0);
                sq[0] = _mm512_fmadd_pd(xb, _mm512_loadu_pd(r), sq[0]);
                sq[1] = _mm512_fmadd_pd(xb, _mm512_loadu_pd(r.add(8)), sq[1]);
            }
            let mut buf = [0.0f64; 16];
            for (h, half) in buf.chunks_exact_mut(8).enumerate() {
                let v = _mm512_add_pd(
                    _mm512_add_pd(s[0][h], s[1][h]),
                    _mm512_add_pd(s[2][h], s[3][h]),
                );
                _mm512_storeu_pd(half.as_mut_ptr(), v);
            }
            let w = (k - a0).min(16);
            out[a0..a0 + w].copy_from_slice(&buf[..w]);
            a0 += 16;
        }
    }

    /// [`super::Kernel::lower_t_mul_rows`] by [`tri_mul_rows`].
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn lower_t_mul_rows<X: Copy + Into<f64>>(
        t: &[f64],
        k: usize,
        kp: usize,
        x: &[X],
        ldx: usize,
        out: &mut [f64],
    ) {
        let op = out.as_mut_ptr();
        tri_mul_rows(t, Triangle::Lower, k, kp, x, ldx, |r, a0, sums| {
            let o = op.add(r * kp + a0);
            _mm512_storeu_pd(o, sums[0]);
            _mm512_storeu_pd(o.add(8), sums[1]);
        });
    }

    /// The shape of a triangular matrix, which says the rows `b` that add to
    /// a panel of its columns.
    #[derive(Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Triangle {
        /// Zero below the diagonal: the rows up to the panel's last column.
        Upper,
        /// Zero above the diagonal: the rows from the panel's first column.
        Lower,
    }

    /// `x_r M` for each row `x_r` of `x` (`k` values, rows `ldx` apart; `n =
    /// x.len() / ldx` rows), with `M` triangular as `tri` says (`k x k`,
    /// rows `kp` apart, `kp >= padded(k)`, zero where `tri` says and beyond
    /// `k`): register tiles of 8 rows by 16 columns (`M` read once for 8
    /// rows), each sum over `b` in one chain in the order of `b`, in `f64`.
    /// `store(r, a0, sums)` takes the sums of row `r` in columns `a0..a0 +
    /// 16` (those past `k` are zero).
    ///
    /// # Safety
    /// The CPU must have AVX-512F, and `m` hold `k x kp` values.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(crate) unsafe fn tri_mul_rows<X: Copy + Into<f64>>(
        m: &[f64],
        tri: Triangle,
        k: usize,
        kp: usize,
        x: &[X],
        ldx: usize,
        mut store: impl FnMut(usize, usize, [__m512d; 2]),
    ) {
        const R: usize = 8;
        assert!(m.len() >= k * kp && kp >= padded(k) && x.len().is_multiple_of(ldx));
        let n = x.len() / ldx;
        let mp = m.as_ptr();
        // the tile's rows by column, in f64: v[b R + r] (missing rows zero)
        let mut v = vec![0.0f64; k * R];
        let mut r0 = 0;
        while r0 < n {
            let nr = (n - r0).min(R);
            for (b, vb) in v.chunks_exact_mut(R).enumerate() {
                for (r, d) in vb.iter_mut().enumerate() {
                    *d = if r < nr {
                        (*x.get_unchecked((r0 + r) * ldx + b)).into()
                    } else {
                        0.0
                    };
                }
            }
            let mut a0 = 0;
            while a0 < k {
                let rows = match tri {
                    Triangle::Upper => 0..k.min(a0 + PAD),
                    Triangle::Lower => a0..k,
                };
                let mut acc = [[_mm512_setzero_pd(); 2]; R];
                for b in rows {
                    let m0 = _mm512_loadu_pd(mp.add(b * kp + a0));
                    let m1 = _mm512_loadu_pd(mp.add(b * kp + a0 + 8));
                    for (r, acc_r) in acc.iter_mut().enumerate() {
                        let xb = _mm512_set1_pd(*v.get_unchecked(b * R + r));
                        acc_r[0] = _mm512_fmadd_pd(xb, m0, acc_r[0]);
                        acc_r[1] = _mm512_fmadd_pd(xb, m1, acc_r[1]);
                    }
                }
                for (r, acc_r) in acc[..nr].iter().enumerate() {
                    store(r0 + r, a0, *acc_r);
                }
                a0 += PAD;
            }
            r0 += nr;
        }
    }

    /// [`super::Kernel::rows_gram`] without a transpose: tiles of 4 rows by 4
    /// rows of `raw`, each of the 16 products summed over the depth in 16
    /// lanes (a vector multiply-add per step), then across them
    /// ([`hsum16`]), converted to `f64` and stored 4 columns a row. A tile and
    /// its mirror image take the same products in the same order, so the
    /// entries below the diagonal that it writes equal those above, bit for
    /// bit. One of `lines` is prefetched per step.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn rows_gram(
        raw: &[f32],
        n: usize,
        kp: usize,
        out: &mut [f64],
        mut lines: Lines<'_>,
    ) {
        if n == 0 {
            return;
        }
        let np = padded(n);
        let (r, o) = (raw.as_ptr(), out.as_mut_ptr());
        // rows past the last are read as the last (their sums are not stored)
        let row = |c: usize| r.add(c.min(n - 1) * kp);
        let mut c0 = 0;
        while c0 < n {
            let cr = [row(c0), row(c0 + 1), row(c0 + 2), row(c0 + 3)];
            let mut d0 = c0 & !7;
            while d0 < n {
                let dr = [row(d0), row(d0 + 1), row(d0 + 2), row(d0 + 3)];
                let mut acc = [_mm512_setzero_ps(); 16];
                let mut a = 0;
                while a < kp {
                    if let Some(line) = lines.next() {
                        _mm_prefetch::<_MM_HINT_T1>(line as *const i8);
                    }
                    let y = [
                        _mm512_loadu_ps(dr[0].add(a)),
                        _mm512_loadu_ps(dr[1].add(a)),
                        _mm512_loadu_ps(dr[2].add(a)),
                        _mm512_loadu_ps(dr[3].add(a)),
                    ];
                    for (i, &ci) in cr.iter().enumerate() {
                        let x = _mm512_loadu_ps(ci.add(a));
                        for (j, &yj) in y.iter().enumerate() {
                            acc[4 * i + j] = _mm512_fmadd_ps(x, yj, acc[4 * i + j]);
                        }
                    }
                    a += PAD;
                }
                // lane 4 i + j: row c0 + i, column d0 + j
                let sums = hsum16(&acc);
                let halves = [
                    _mm512_cvtps_pd(_mm512_castps512_ps256(sums)),
                    _mm512_cvtps_pd(_mm512_castps512_ps256(_mm512_shuffle_f32x4::<0xEE>(
                        sums, sums,
                    ))),
                ];
                let cols: u8 = if d0 + 4 <= n {
                    0x0F
                } else {
                    (1u8 << (n - d0)) - 1
                };
                for i in 0..4.min(n - c0) {
                    let at = o.add((c0 + i) * np + d0);
                    let h = halves[i / 2];
                    if i % 2 == 0 {
                        _mm512_mask_storeu_pd(at, cols, h);
                    } else {
                        // the upper four lanes, stored from `at`
                        _mm512_mask_storeu_pd(at.wrapping_sub(4), cols << 4, h);
                    }
                }
                d0 += 4;
            }
            for c in c0..(c0 + 4).min(n) {
                for d in n.max(c & !7)..np {
                    *o.add(c * np + d) = 0.0;
                }
            }
            c0 += 4;
        }
    }

    /// [`super::Kernel::transpose`] in tiles of 16 x 16 transposed in
    /// registers.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn transpose(raw: &[f32], n: usize, kp: usize, k: usize, t: &mut [f32]) {
        let np = padded(n);
        let (r, o) = (raw.as_ptr(), t.as_mut_ptr());
        let mut c0 = 0;
        while c0 < np {
            let mut a0 = 0;
            while a0 < k {
                let mut x = [_mm512_setzero_ps(); 16];
                for (i, xi) in x.iter_mut().enumerate().take(n.saturating_sub(c0)) {
                    *xi = _mm512_loadu_ps(r.add((c0 + i) * kp + a0));
                }
                let y = transpose16(&x);
                for (j, yj) in y.iter().enumerate().take(k - a0) {
                    _mm512_storeu_ps(o.add((a0 + j) * np + c0), *yj);
                }
                a0 += PAD;
            }
            c0 += PAD;
        }
    }

    /// The 16 x 16 transpose of `x` (row `i` is `x[i]`): unpacks within
    /// 128-bit lanes transpose each 4 x 4 block, then two rounds of lane
    /// shuffles move the blocks.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn transpose16(x: &[__m512; 16]) -> [__m512; 16] {
        let mut u = [[_mm512_setzero_ps(); 4]; 4];
        for (g, ug) in u.iter_mut().enumerate() {
            let x = &x[4 * g..4 * g + 4];
            let t0 = _mm512_castps_pd(_mm512_unpacklo_ps(x[0], x[1]));
            let t1 = _mm512_castps_pd(_mm512_unpackhi_ps(x[0], x[1]));
            let t2 = _mm512_castps_pd(_mm512_unpacklo_ps(x[2], x[3]));
            let t3 = _mm512_castps_pd(_mm512_unpackhi_ps(x[2], x[3]));
            // in each 128-bit lane L: column 4 L + e of rows 4 g .. 4 g + 3
            ug[0] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
            ug[1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
            ug[2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
            ug[3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
        }
        let mut y = [_mm512_setzero_ps(); 16];
        for e in 0..4 {
            let v0 = _mm512_shuffle_f32x4::<0x88>(u[0][e], u[1][e]);
            let v1 = _mm512_shuffle_f32x4::<0xDD>(u[0][e], u[1][e]);
            let v2 = _mm512_shuffle_f32x4::<0x88>(u[2][e], u[3][e]);
            let v3 = _mm512_shuffle_f32x4::<0xDD>(u[2][e], u[3][e]);
            y[e] = _mm512_shuffle_f32x4::<0x88>(v0, v2);
            y[4 + e] = _mm512_shuffle_f32x4::<0x88>(v1, v3);
            y[8 + e] = _mm512_shuffle_f32x4::<0xDD>(v0, v2);
            y[12 + e] = _mm512_shuffle_f32x4::<0xDD>(v1, v3);
        }
        y
    }

    /// The 16 horizontal sums of `x[0..16]`, as one vector, by a fixed tree
    /// of shuffles (about three instructions per sum instead of eight).
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn hsum16(x: &[__m512; 16]) -> __m512 {
        // pairs within 128-bit lanes: [a0+a2, b0+b2, a1+a3, b1+b3]
        let mut a = [_mm512_setzero_ps(); 8];
        for (i, ai) in a.iter_mut().enumerate() {
            let (p, q) = (x[2 * i], x[2 * i + 1]);
            *ai = _mm512_add_ps(_mm512_unpacklo_ps(p, q), _mm512_unpackhi_ps(p, q));
        }
        // four rows per 128-bit lane: [r0, r1, r2, r3] partial sums
        let mut b = [_mm512_setzero_ps(); 4];
        for (i, bi) in b.iter_mut().enumerate() {
            let (p, q) = (a[2 * i], a[2 * i + 1]);
            *bi = _mm512_add_ps(
                _mm512_shuffle_ps::<0x44>(p, q),
                _mm512_shuffle_ps::<0xEE>(p, q),
            );
        }
        // across the four 128-bit lanes
        let c0 = _mm512_add_ps(
            _mm512_shuffle_f32x4::<0x88>(b[0], b[1]),
            _mm512_shuffle_f32x4::<0xDD>(b[0], b[1]),
        );
        let c1 = _mm512_add_ps(
            _mm512_shuffle_f32x4::<0x88>(b[2], b[3]),
            _mm512_shuffle_f32x4::<0xDD>(b[2], b[3]),
        );
        _mm512_add_ps(
            _mm512_shuffle_f32x4::<0x88>(c0, c1),
            _mm512_shuffle_f32x4::<0xDD>(c0, c1),
        )
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn syrk(blk: &Block<'_>, out: &mut [f64], base: Option<&[f64]>) {
        let kp = blk.kp;
        let o = out.as_mut_ptr();
        let b = base.map_or(std::ptr::null(), |b| b.as_ptr());
        let mut pf = blk.prefetch.lines();
        if kp == PAD {
            // One tile of k rows by 16 columns covers the whole matrix.
            macro_rules! small {
                ($($mr:literal)*) => {
                    match blk.k {
                        $($mr => tile::<$mr, 1>(blk, 0, 0, o, b, &mut pf),)*
                        _ => unreachable!("k <= 16 when kp == 16"),
                    }
                };
            }
            small!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);
            return;
        }
        let mut a0 = 0;
        while a0 < kp {
            let mut b0 = a0 & !(PAD - 1);
            if a0 != b0 {
                // the second 8 rows of a 16-column diagonal block: only the
                // 8 columns from the diagonal on, in 256-bit vectors
                half_tile(blk, a0, o, b, &mut pf);
                b0 += PAD;
            }
            let mut q = (kp - b0) / PAD;
            while q > 0 {
                // groups of 3, 2 or 1 vectors: 24, 16 or 8 accumulators
                let nv = q.min(2);
                match nv {
                    1 => tile::<8, 1>(blk, a0, b0, o, b, &mut pf),
                    _ => tile::<8, 2>(blk, a0, b0, o, b, &mut pf),
                }
                b0 += PAD * nv;
                q -= nv;
            }
            a0 += 8;
        }
    }

    /// Blocked left-looking Cholesky in `f64` with panels of 8 rows. Each
    /// panel's rows are first brought up to date with the rows of `U` above
    /// them, in register tiles of up to 8 rows x 24 columns summed over the
    /// whole depth (one load and one store per element and panel); the 8 x 8
    /// diagonal block is then factored in registers, and the rest of the
    /// panel's rows solved against it in the same tiles before they are
    /// stored. On return the upper triangle holds `U`, and the strictly lower
    /// triangle of each 8 x 8 diagonal block holds its transpose (which
    /// [`solve`] reads); the rest of the lower triangle is scratch.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn cholesky(
        a: &mut [f64],
        n: usize,
        ld: usize,
        min_pivot: &[f64],
    ) -> Result<(), usize> {
        let n8 = n.div_ceil(8) * 8;
        let p = a.as_mut_ptr();
        let mut inv = [0.0f64; 8];
        let mut j0 = 0;
        while j0 < n {
            let pw = (n - j0).min(8);
            macro_rules! diag {
                ($($m:literal)*) => {
                    match pw {
                        $($m => diag_block::<$m>(p, ld, j0, &min_pivot[j0..j0 + $m], &mut inv)?,)*
                        _ => unreachable!(),
                    }
                };
            }
            diag!(1 2 3 4 5 6 7 8);
            let mut c0 = j0 + 8;
            while c0 < n8 {
                let nv = ((n8 - c0) / 8).min(3);
                match nv {
                    1 => strip_tile::<1>(p, ld, j0, c0, &inv),
                    2 => strip_tile::<2>(p, ld, j0, c0, &inv),
                    _ => strip_tile::<3>(p, ld, j0, c0, &inv),
                }
                c0 += 8 * nv;
            }
            j0 += 8;
        }
        Ok(())
    }

    /// Lane `q` of `v` in every lane.
    #[inline(always)]
    unsafe fn lane(v: __m512d, q: usize) -> __m512d {
        _mm512_permutexvar_pd(_mm512_set1_epi64(q as i64), v)
    }

    /// Rows `j0..j0+MR`, columns `c0..c0+8 NV` of `A - U[..j0]^T U[..j0]`
    /// (the left-looking update over the rows of `U` above the panel).
    #[inline(always)]
    unsafe fn updated<const MR: usize, const NV: usize>(
        p: *const f64,
        ld: usize,
        j0: usize,
        c0: usize,
    ) -> [[__m512d; NV]; MR] {
        let mut acc = [[_mm512_setzero_pd(); NV]; MR];
        for (r, row) in acc.iter_mut().enumerate() {
            for (v, x) in row.iter_mut().enumerate() {
                *x = _mm512_loadu_pd(p.add((j0 + r) * ld + c0 + 8 * v));
            }
        }
        for q in 0..j0 {
            let u = p.add(q * ld);
            let mut bv = [_mm512_setzero_pd(); NV];
            for (v, x) in bv.iter_mut().enumerate() {
                *x = _mm512_loadu_pd(u.add(c0 + 8 * v));
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let x = _mm512_set1_pd(*u.add(j0 + r));
                for (y, b) in row.iter_mut().zip(&bv) {
                    *y = _mm512_fnmadd_pd(x, *b, *y);
                }
            }
        }
        acc
    }

    /// Factor the diagonal block of the panel at `j0` (`MR` rows) in
    /// registers: `1 / U_qq` into `inv`, `U` into the block's upper
    /// triangle and its transpose into the lower one. Each step divides
    /// by the pivot `d` (not by `sqrt(d)` twice), which keeps the square root
    /// off the chain from one pivot to the next.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn diag_block<const MR: usize>(
        p: *mut f64,
        ld: usize,
        j0: usize,
        min_pivot: &[f64],
        inv: &mut [f64; 8],
    ) -> Result<(), usize> {
        let mut acc = updated::<MR, 1>(p, ld, j0, j0);
        for q in 0..MR {
            let v = acc[q][0];
            let d = _mm512_cvtsd_f64(lane(v, q));
            if !d.is_finite() || d <= min_pivot[q] {
                return Err(j0 + q);
            }
            let t = _mm512_mul_pd(v, _mm512_set1_pd(1.0 / d));
            for (r, row) in acc.iter_mut().enumerate().skip(q + 1) {
                row[0] = _mm512_fnmadd_pd(lane(v, r), t, row[0]);
            }
            let s = d.sqrt();
            inv[q] = 1.0 / s;
            let u = _mm512_mul_pd(v, _mm512_set1_pd(inv[q]));
            acc[q][0] = _mm512_mask_mov_pd(u, 1 << q, _mm512_set1_pd(s));
        }
        for (r, row) in acc.iter().enumerate() {
            _mm512_storeu_pd(p.add((j0 + r) * ld + j0), row[0]);
        }
        for q in 1..MR {
            for m in 0..q {
                *p.add((j0 + q) * ld + j0 + m) = *p.add((j0 + m) * ld + j0 + q);
            }
        }
        Ok(())
    }

    /// Columns `c0..c0+8 NV` of the panel at `j0` (8 rows): updated, then
    /// `U12 = U11^-T A12` by forward substitution in registers.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn strip_tile<const NV: usize>(
        p: *mut f64,
        ld: usize,
        j0: usize,
        c0: usize,
        inv: &[f64; 8],
    ) {
        let mut x = updated::<8, NV>(p, ld, j0, c0);
        for q in 0..8 {
            let mut row = x[q];
            for (r, xr) in x.iter().enumerate().take(q) {
                let f = _mm512_set1_pd(*p.add((j0 + r) * ld + j0 + q));
                for (y, b) in row.iter_mut().zip(xr) {
                    *y = _mm512_fnmadd_pd(f, *b, *y);
                }
            }
            let s = _mm512_set1_pd(inv[q]);
            for y in row.iter_mut() {
                *y = _mm512_mul_pd(*y, s);
            }
            x[q] = row;
        }
        for (r, row) in x.iter().enumerate() {
            for (v, y) in row.iter().enumerate() {
                _mm512_storeu_pd(p.add((j0 + r) * ld + c0 + 8 * v), *y);
            }
        }
    }

    /// Lane `q` of the result is the sum of the lanes of `a[q]`.
    #[inline(always)]
    unsafe fn hsum8(a: &[__m512d; 8]) -> __m512d {
        let mut b = [_mm512_setzero_pd(); 4];
        for (i, x) in b.iter_mut().enumerate() {
            let (u, v) = (a[2 * i], a[2 * i + 1]);
            *x = _mm512_add_pd(_mm512_unpacklo_pd(u, v), _mm512_unpackhi_pd(u, v));
        }
        let c0 = _mm512_add_pd(
            _mm512_shuffle_f64x2::<0x88>(b[0], b[1]),
            _mm512_shuffle_f64x2::<0xDD>(b[0], b[1]),
        );
        let c1 = _mm512_add_pd(
            _mm512_shuffle_f64x2::<0x88>(b[2], b[3]),
            _mm512_shuffle_f64x2::<0xDD>(b[2], b[3]),
        );
        _mm512_add_pd(
            _mm512_shuffle_f64x2::<0x88>(c0, c1),
            _mm512_shuffle_f64x2::<0xDD>(c0, c1),
        )
    }

    /// [`super::Kernel::solve`] on the factor of [`cholesky`], by panels of
    /// 8 rows held in one register. Forward (`U^T y = x`): each panel's
    /// triangle column by column (the rows of the diagonal block), then the
    /// rest of `x` updated by the panel's rows. Backward (`U x = y`): for
    /// each panel from the last, its 8 dot products with the part of `x`
    /// already solved, in eight vector sums reduced together, then its
    /// triangle column by column (the transposed block below the diagonal).
    /// One step of either triangle is a lane broadcast, a multiply and a
    /// multiply-add.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn solve(u: &[f64], inv: &[f64], n: usize, ld: usize, x: &mut [f64]) {
        if n == 0 {
            return; // nothing to solve (and no last panel to start from)
        }
        let n8 = n.div_ceil(8) * 8;
        let (up, xp) = (u.as_ptr(), x.as_mut_ptr());
        for d in n..n8 {
            *xp.add(d) = 0.0;
        }
        let mut j0 = 0;
        while j0 < n {
            let pw = (n - j0).min(8);
            let mut t = _mm512_loadu_pd(xp.add(j0));
            let mut y = t;
            let mut yb = [_mm512_setzero_pd(); 8];
            for (q, b) in yb.iter_mut().enumerate().take(pw) {
                let yq = _mm512_mul_pd(lane(t, q), _mm512_set1_pd(*inv.get_unchecked(j0 + q)));
                *b = yq;
                y = _mm512_mask_mov_pd(y, 1 << q, yq);
                t = _mm512_fnmadd_pd(yq, _mm512_loadu_pd(up.add((j0 + q) * ld + j0)), t);
            }
            _mm512_storeu_pd(xp.add(j0), y);
            let mut c = j0 + 8;
            while c < n8 {
                let mut v = _mm512_loadu_pd(xp.add(c));
                for (q, b) in yb.iter().enumerate().take(pw) {
                    v = _mm512_fnmadd_pd(*b, _mm512_loadu_pd(up.add((j0 + q) * ld + c)), v);
                }
                _mm512_storeu_pd(xp.add(c), v);
                c += 8;
            }
            j0 += 8;
        }
        let mut j0 = n8 - 8;
        loop {
            let pw = (n - j0).min(8);
            let mut t = _mm512_loadu_pd(xp.add(j0));
            if j0 + 8 < n8 {
                let mut acc = [_mm512_setzero_pd(); 8];
                let mut c = j0 + 8;
                while c < n8 {
                    let v = _mm512_loadu_pd(xp.add(c));
                    for (q, a) in acc.iter_mut().enumerate() {
                        *a = _mm512_fmadd_pd(_mm512_loadu_pd(up.add((j0 + q) * ld + c)), v, *a);
                    }
                    c += 8;
                }
                t = _mm512_sub_pd(t, hsum8(&acc));
            }
            let mut x8 = t;
            for q in (0..pw).rev() {
                let xq = _mm512_mul_pd(lane(t, q), _mm512_set1_pd(*inv.get_unchecked(j0 + q)));
                x8 = _mm512_mask_mov_pd(x8, 1 << q, xq);
                t = _mm512_fnmadd_pd(xq, _mm512_loadu_pd(up.add((j0 + q) * ld + j0)), t);
            }
            _mm512_storeu_pd(xp.add(j0), x8);
            if j0 == 0 {
                break;
            }
            j0 -= 8;
        }
    }

    /// Rows `a0..a0+8` by columns `a0..a0+8` (`a0` an odd multiple of 8), in
    /// 256-bit vectors, accumulated over the block in registers, then added
    /// to `base` (or `out`) in `f64`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn half_tile(
        blk: &Block<'_>,
        a0: usize,
        out: *mut f64,
        base: *const f64,
        pf: &mut Lines<'_>,
    ) {
        let kp = blk.kp;
        let mut acc = [_mm256_setzero_ps(); 8];
        let mut rp = blk.raw.as_ptr().add(a0);
        let mut wp = blk.wtd.as_ptr().add(a0);
        let mut lines = *pf;
        for _ in 0..blk.nb {
            if let Some(line) = lines.next() {
                _mm_prefetch::<_MM_HINT_T1>(line as *const i8);
            }
            let y = _mm256_loadu_ps(rp);
            for (r, a) in acc.iter_mut().enumerate() {
                *a = _mm256_fmadd_ps(_mm256_set1_ps(*wp.add(r)), y, *a);
            }
            rp = rp.add(kp);
            wp = wp.add(kp);
        }
        *pf = lines;
        for (r, a) in acc.iter().enumerate() {
            let off = (a0 + r) * kp + a0;
            let src = if base.is_null() {
                out.add(off) as *const f64
            } else {
                base.add(off)
            };
            _mm512_storeu_pd(
                out.add(off),
                _mm512_add_pd(_mm512_loadu_pd(src), _mm512_cvtps_pd(*a)),
            );
        }
    }

    /// Rows `a0..a0+MR` by columns `b0..b0+16 NV`, accumulated over the
    /// block in registers, then added to `base` (or `out`) in `f64`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn tile<const MR: usize, const NV: usize>(
        blk: &Block<'_>,
        a0: usize,
        b0: usize,
        out: *mut f64,
        base: *const f64,
        pf: &mut Lines<'_>,
    ) {
        let kp = blk.kp;
        let mut acc = [[_mm512_setzero_ps(); NV]; MR];
        let mut rp = blk.raw.as_ptr().add(b0);
        let mut wp = blk.wtd.as_ptr().add(a0);
        let mut lines = *pf;
        for _ in 0..blk.nb {
            if let Some(line) = lines.next() {
                _mm_prefetch::<_MM_HINT_T1>(line as *const i8);
            }
            let mut bv = [_mm512_setzero_ps(); NV];
            for (v, x) in bv.iter_mut().enumerate() {
                *x = _mm512_loadu_ps(rp.add(PAD * v));
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let x = _mm512_set1_ps(*wp.add(r));
                for (a, y) in row.iter_mut().zip(&bv) {
                    *a = _mm512_fmadd_ps(x, *y, *a);
                }
            }
            rp = rp.add(kp);
            wp = wp.add(kp);
        }
        *pf = lines;
        for (r, row) in acc.iter().enumerate() {
            for (v, a) in row.iter().enumerate() {
                flush16(out, base, (a0 + r) * kp + b0 + PAD * v, *a);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// `check::<K>()` for the portable kernel and, where this CPU has it,
    /// the AVX-512 one.
    macro_rules! on_each_kernel {
        ($check:ident) => {{
            $check::<PortableKernel>();
            #[cfg(target_arch = "x86_64")]
            if Isa::Avx512.available() {
                $check::<Avx512Kernel>();
            }
        }};
    }

    /// Check a kernel against a naive f64 product on the covered entries.
    fn check_kernel<K: Kernel>(k: usize, nb: usize, seed: u64) {
        let kp = padded(k);
        let n_fixed = 37;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let fixed: Vec<f32> = (0..n_fixed * k)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let idx: Vec<i32> = (0..nb)
            .map(|_| rng.random_range(0..n_fixed as i32))
            .collect();
        let sw: Vec<f32> = (0..nb).map(|_| rng.random_range(0.0..2.0)).collect();
        let y: Vec<f32> = (0..nb).map(|_| rng.random_range(-3.0..3.0)).collect();
        let mut raw = vec![0.0f32; nb * kp];
        let mut rhs = vec![1.0f32; kp];
        let g = Gather {
            fixed: &fixed,
            k,
            kp,
        };
        // rows gathered next, prefetched near the end; they need no check
        let ahead = [idx[0], -1, i32::MAX, n_fixed as i32, idx[nb - 1]];
        let e = Entries {
            idx: &idx,
            sw: &sw,
            y: &y,
            ahead: &ahead,
        };
        let mut out = Gathered {
            g: &mut raw,
            rhs: &mut rhs,
        };
        K::gather(&g, &e, &mut out);
        let mut want_rhs = vec![1.0f64; kp];
        for t in 0..nb {
            let j = idx[t] as usize;
            for a in 0..kp {
                let v = if a < k { fixed[j * k + a] } else { 0.0 };
                assert_eq!(raw[t * kp + a], sw[t] * v);
                want_rhs[a] += y[t] as f64 * v as f64;
            }
        }
        for a in 0..kp {
            assert!((rhs[a] as f64 - want_rhs[a]).abs() < 1e-4 * (1.0 + want_rhs[a].abs()));
        }
        let nb_dots = nb + 17;
        let mut many = vec![0.0f32; nb_dots * kp];
        for (t, row) in many.chunks_exact_mut(kp).enumerate() {
            for (a, v) in row.iter_mut().enumerate().take(k) {
                *v = ((t * 31 + a * 7) % 13) as f32 - 6.0;
            }
        }
        let uu: Vec<f32> = (0..kp)
            .map(|a| if a < k { 0.5 - a as f32 * 0.01 } else { 0.0 })
            .collect();
        let mut pp = vec![0.0f32; nb_dots];
        K::dots(&many, nb_dots, kp, &uu, &mut pp);
        for t in 0..nb_dots {
            let want: f64 = (0..kp)
                .map(|a| many[t * kp + a] as f64 * uu[a] as f64)
                .sum();
            assert!(
                (pp[t] as f64 - want).abs() < 1e-4 * (1.0 + want.abs()),
                "k={k} t={t}"
            );
        }
        // the fused pass gives the two passes' results bit for bit
        let mut p_sep = vec![0.0f32; nb_dots];
        let mut q_sep = vec![0.0f32; kp];
        K::dots(&many, nb_dots, kp, &uu, &mut p_sep);
        K::axpys(&many, nb_dots, kp, &p_sep, &mut q_sep);
        // (in either order of reading)
        for resident in [false, true] {
            let mut p_fused = vec![0.0f32; nb_dots];
            let mut q_fused = vec![f32::NAN; kp];
            K::dots_axpys(
                &many,
                nb_dots,
                kp,
                &uu,
                &mut p_fused,
                &mut q_fused,
                resident,
            );
            assert_eq!(p_sep, p_fused, "k={k} nb={nb} {resident}");
            assert_eq!(q_sep, q_fused, "k={k} nb={nb} {resident}");
        }
        let u: Vec<f32> = (0..kp)
            .map(|a| if a < k { a as f32 * 0.1 - 0.3 } else { 0.0 })
            .collect();
        let mut p = vec![0.0f32; nb];
        K::dots(&raw, nb, kp, &u, &mut p);
        for t in 0..nb {
            let want: f64 = (0..kp).map(|a| raw[t * kp + a] as f64 * u[a] as f64).sum();
            assert!((p[t] as f64 - want).abs() < 1e-5 * (1.0 + want.abs()));
        }
        let base: Vec<f64> = (0..kp * kp).map(|i| i as f64 * 0.25).collect();
        let mut out = vec![f64::NAN; kp * kp];
        let blk = Block {
            raw: &raw,
            wtd: &raw,
            nb,
            k,
            kp,
            prefetch: Upcoming {
                fixed: &fixed,
                k,
                idx: &idx,
            },
        };
        K::syrk(&blk, &mut out, Some(&base));
        // a second pass accumulates on top (`base = None`)
        K::syrk(&blk, &mut out, None);
        let check_twice = |out: &[f64]| {
            for a in 0..k {
                for b in a..k {
                    let want: f64 = (0..nb)
                        .map(|t| {
                            let j = idx[t] as usize;
                            (sw[t] * fixed[j * k + a]) as f64 * (sw[t] * fixed[j * k + b]) as f64
                        })
                        .sum::<f64>()
                        * 2.0
                        + base[a * kp + b];
                    let got = out[a * kp + b];
                    assert!(
                        (got - want).abs() < 1e-4 * (1.0 + want.abs()),
                        "k={k} nb={nb} ({a},{b}): {got} vs {want}"
                    );
                }
            }
        };
        check_twice(&out);
        // gather and product in one call: the block and right-hand side of
        // the gather, bit for bit, and the same normal matrix
        let (mut raw2, mut rhs2) = (vec![0.0f32; nb * kp], vec![1.0f32; kp]);
        let mut a2 = vec![f64::NAN; kp * kp];
        let mut out2 = Gathered {
            g: &mut raw2,
            rhs: &mut rhs2,
        };
        K::gather_syrk(&g, &e, &mut out2, k, &mut a2, Some(&base));
        assert_eq!(raw2, raw, "k={k} nb={nb}");
        assert_eq!(rhs2, rhs, "k={k} nb={nb}");
        // the padding columns get base (zero in a fit, which the Cholesky needs)
        for a in 0..k {
            for b in k..kp {
                assert_eq!(a2[a * kp + b], base[a * kp + b], "k={k} nb={nb} ({a},{b})");
            }
        }
        let mut out2 = Gathered {
            g: &mut raw2,
            rhs: &mut rhs2,
        };
        K::gather_syrk(&g, &e, &mut out2, k, &mut a2, None);
        check_twice(&a2);
        // k < 16 as a fit runs it: from the 16-wide zero-padded copy of the
        // fixed rows (the source's k is 16, the normal matrix's is k)
        if kp == PAD && k < PAD {
            let padded16: Vec<f32> = (0..n_fixed * PAD)
                .map(|i| {
                    if i % PAD < k {
                        fixed[i / PAD * k + i % PAD]
                    } else {
                        0.0
                    }
                })
                .collect();
            let g16 = Gather {
                fixed: &padded16,
                k: PAD,
                kp,
            };
            let (mut raw3, mut rhs3) = (vec![0.0f32; nb * kp], vec![1.0f32; kp]);
            let mut a3 = vec![f64::NAN; kp * kp];
            for b in [Some(&base[..]), None] {
                let mut out3 = Gathered {
                    g: &mut raw3,
                    rhs: &mut rhs3,
                };
                K::gather_syrk(&g16, &e, &mut out3, k, &mut a3, b);
                if b.is_some() {
                    assert_eq!(raw3, raw, "k={k} nb={nb}");
                    assert_eq!(rhs3, rhs, "k={k} nb={nb}");
                }
            }
            check_twice(&a3);
        }
    }

    #[test]
    fn portable_kernel_matches_naive_product() {
        for k in [1, 3, 10, 16, 17, 40, 64, 100] {
            check_kernel::<PortableKernel>(k, 23, k as u64);
            check_kernel::<Avx2Kernel>(k, 9, k as u64 + 1);
        }
    }

    #[test]
    fn avx512_kernel_matches_naive_product() {
        #[cfg(target_arch = "x86_64")]
        if Isa::Avx512.available() {
            for k in [1, 3, 10, 16, 17, 33, 40, 64, 100, 128, 200] {
                for nb in [1, 5, 64] {
                    check_kernel::<Avx512Kernel>(k, nb, k as u64 * 1000 + nb as u64);
                }
            }
        }
    }

    /// `transpose` against the definition, over every width of the last
    /// 16 x 16 tile in both directions; the padding of the output must be
    /// written zero whatever was there.
    fn check_transpose<K: Kernel>() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for k in [1, 5, 16, 17, 40, 64, 128] {
            let kp = padded(k);
            for n in [1, 2, 15, 16, 17, 31, 33, 100] {
                let raw: Vec<f32> = (0..n * kp).map(|_| rng.random_range(-1.0..1.0)).collect();
                let np = padded(n);
                let mut t = vec![f32::NAN; k * np];
                K::transpose(&raw, n, kp, k, &mut t);
                for a in 0..k {
                    for c in 0..np {
                        let want = if c < n { raw[c * kp + a] } else { 0.0 };
                        assert_eq!(t[a * np + c], want, "k={k} n={n} ({a}, {c})");
                    }
                }
            }
        }
    }

    #[test]
    fn transposes_match_the_definition() {
        on_each_kernel!(check_transpose);
    }

    fn check_lower_t_mul_rows<K: Kernel>() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        for k in [1, 10, 16, 17, 64, 100] {
            let kp = padded(k);
            let mut t = vec![0.0f64; kp * kp];
            for b in 0..k {
                for a in 0..=b {
                    t[b * kp + a] = rng.random_range(-1.0..1.0);
                }
            }
            for n in [1, 7, 8, 9, 20] {
                let x: Vec<f32> = (0..n * k).map(|_| rng.random_range(-1.0..1.0)).collect();
                let mut out = vec![f64::NAN; n * kp];
                K::lower_t_mul_rows(&t, k, kp, &x, k, &mut out);
                for r in 0..n {
                    for a in 0..k {
                        let terms = (a..k).map(|b| t[b * kp + a] * x[r * k + b] as f64);
                        let want: f64 = terms.clone().sum();
                        let size: f64 = terms.map(f64::abs).sum();
                        let got = out[r * kp + a];
                        assert!((got - want).abs() <= 1e-14 * size, "k={k} n={n} ({r},{a})");
                    }
                    // a row's values do not depend on the rows beside it
                    let mut one = vec![f64::NAN; kp];
                    K::lower_t_mul_rows(&t, k, kp, &x[r * k..r * k + k], k, &mut one);
                    assert_eq!(one[..k], out[r * kp..r * kp + k], "k={k} n={n} row {r}");
                }
                // the same rows in f64, kp apart (what follows k is not read)
                let mut x64 = vec![f64::NAN; n * kp];
                for r in 0..n {
                    for b in 0..k {
                        x64[r * kp + b] = x[r * k + b] as f64;
                    }
                }
                let mut out64 = vec![f64::NAN; n * kp];
                K::lower_t_mul_rows(&t, k, kp, &x64, kp, &mut out64);
                for r in 0..n {
                    assert_eq!(
                        out64[r * kp..r * kp + k],
                        out[r * kp..r * kp + k],
                        "k={k} n={n}"
                    );
                }
            }
        }
    }

    #[test]
    fn lower_t_muls_of_rows_match_the_definition() {
        on_each_kernel!(check_lower_t_mul_rows);
    }

    fn check_rows_gram<K: Kernel>() {
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        for k in [1, 16, 17, 64, 100] {
            let kp = padded(k);
            for n in (1..=40).chain([63, 64, 65, 70]) {
                let np = padded(n);
                // gathered rows, zero from k to kp
                let mut raw = vec![0.0f32; n * kp];
                for c in 0..n {
                    for a in 0..k {
                        raw[c * kp + a] = rng.random_range(-1.0..1.0);
                    }
                }
                let (mut out, mut t) = (vec![f64::NAN; np * np], Vec::new());
                let next = [2i32, 0];
                let upcoming = Upcoming {
                    fixed: &raw,
                    k: kp,
                    idx: &next,
                };
                K::rows_gram(&raw, n, k, kp, &mut t, upcoming, &mut out);
                for c in 0..n {
                    for d in (c & !7)..np {
                        let got = out[c * np + d];
                        if d >= n {
                            assert_eq!(got, 0.0, "k={k} n={n} ({c},{d})");
                            continue;
                        }
                        let (want, size) = (0..k).fold((0.0, 0.0), |(w, m), a| {
                            let p = raw[c * kp + a] as f64 * raw[d * kp + a] as f64;
                            (w + p, m + p.abs())
                        });
                        assert!(
                            (got - want).abs() <= 1e-6 * size,
                            "k={k} n={n} ({c},{d}): {got} vs {want}"
                        );
                        // what the Cholesky kernels read below the diagonal
                        // (within its block of 8) is the entry above it
                        if d < c {
                            assert_eq!(got, out[d * np + c], "k={k} n={n} ({c},{d})");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn rows_grams_match_the_definition() {
        on_each_kernel!(check_rows_gram);
    }

    fn check_cholesky<K: Kernel>() {
        // an empty system: nothing to factor, and the solve touches nothing
        assert_eq!(K::cholesky(&mut [], 0, PAD, &[]), Ok(()));
        let mut x = [1.0f64; 8];
        K::solve(&[], &[], 0, PAD, &mut x);
        assert_eq!(x, [1.0; 8]);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for n in [1, 2, 7, 8, 9, 15, 16, 17, 24, 33, 64, 100, 128] {
            let ld = padded(n);
            let m = n + 5;
            let b: Vec<f64> = (0..m * n).map(|_| rng.random_range(-1.0..1.0)).collect();
            let mut a = vec![0.0; n * ld];
            for i in 0..n {
                for j in 0..n {
                    a[i * ld + j] = (0..m).map(|t| b[t * n + i] * b[t * n + j]).sum::<f64>();
                }
                a[i * ld + i] += 0.1;
            }
            let orig = a.clone();
            K::cholesky(&mut a, n, ld, &vec![0.0; n]).unwrap();
            for i in 0..n {
                for j in i..n {
                    let v: f64 = (0..=i).map(|p| a[p * ld + i] * a[p * ld + j]).sum();
                    let want = orig[i * ld + j];
                    assert!(
                        (v - want).abs() < 1e-10 * (1.0 + want.abs()),
                        "n={n} ({i},{j})"
                    );
                }
            }
            // the solve against the portable one, and A x = b
            let b: Vec<f64> = (0..ld)
                .map(|d| if d < n { d as f64 - 3.5 } else { 0.0 })
                .collect();
            let inv: Vec<f64> = (0..n).map(|d| 1.0 / a[d * ld + d]).collect();
            let mut x = b.clone();
            K::solve(&a, &inv, n, ld, &mut x);
            let mut want = b.clone();
            crate::dense::cholesky_solve_inv::<crate::dense::Unfused>(&a, &inv, n, ld, &mut want);
            for i in 0..n {
                let ax: f64 = (0..n).map(|j| orig[i.min(j) * ld + i.max(j)] * x[j]).sum();
                assert!(
                    (ax - b[i]).abs() < 1e-8 * (1.0 + b[i].abs()),
                    "n={n} row {i}"
                );
                assert!(
                    (x[i] - want[i]).abs() < 1e-9 * (1.0 + want[i].abs()),
                    "n={n} x[{i}]"
                );
            }
            // an indefinite matrix fails at the right pivot (the pivots
            // before it are those of the leading block, which is unchanged)
            for j in [0, n / 2, n - 1] {
                let mut bad = orig.clone();
                bad[j * ld + j] = -1.0;
                assert_eq!(
                    K::cholesky(&mut bad, n, ld, &vec![0.0; n]),
                    Err(j),
                    "n={n} j={j}"
                );
            }
        }
    }

    #[test]
    fn cholesky_kernels_factor_spd_matrices() {
        on_each_kernel!(check_cholesky);
    }

    #[test]
    fn the_prefetched_lines_are_those_each_upcoming_row_touches() {
        // every line holding a value of each row, in row order, whatever the
        // row length and wherever the factor starts
        let data = vec![0.0f32; 64 * 70 + 32];
        for k in [1, 10, 16, 17, 40, 64, 70] {
            for skew in [0, 1, 4, 15] {
                let at = (64 - data.as_ptr() as usize % 64) % 64 / 4 + skew;
                let fixed = &data[at..at + 64 * k];
                let idx = [3i32, 0, 63, 3, 17];
                let got: Vec<usize> = Upcoming {
                    fixed,
                    k,
                    idx: &idx,
                }
                .lines()
                .collect();
                // per row, from the line of its first value to that of its
                // last (a row may begin in the line the previous one ended in)
                let mut want = vec![];
                for &j in &idx {
                    let row = &fixed[j as usize * k..(j as usize + 1) * k];
                    let first = row.as_ptr() as usize & !63;
                    let last = &row[k - 1] as *const f32 as usize & !63;
                    want.extend((first..=last).step_by(64));
                }
                assert_eq!(got, want, "k={k} skew={skew}");
            }
        }
        assert_eq!(Upcoming::NONE.lines().next(), None);
    }

    #[test]
    fn padding_and_isa_names() {
        assert_eq!(padded(1), 16);
        assert_eq!(padded(16), 16);
        assert_eq!(padded(17), 32);
        assert!(Isa::Portable.available());
        assert!(Isa::detect().available());
        assert_eq!(Isa::Avx2.name(), "avx2");
    }
}
