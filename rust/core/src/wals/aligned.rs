//! `f32` buffers that start on a cache line.
//!
//! A half-sweep gathers whole rows of the fixed factor. When a row of `k`
//! values starts on a 64-byte boundary and `4 k` is a multiple of 64, the
//! row is exactly `k / 16` cache lines and every 16-lane load lies in one
//! line. A row off the boundary by 16 bytes (where `malloc`, and so numpy
//! and `Vec`, put large arrays) touches one line more (5 for 4 at k = 64,
//! 9 for 8 at k = 128) and every one of its loads is split across two lines.
//! The copies the core makes to gather from (the whitened or padded fixed
//! factor) are [`AlignedVec`]s; the factors it is given are aligned by
//! their owner (embspace's Python backend allocates them so).

use super::kernel::PAD;

/// One 64-byte cache line of `f32`s.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub(crate) struct Line(pub(crate) [f32; PAD]);

/// `len` `f32` values starting on a cache line, zero beyond `len` up to the
/// end of the last line. Dereferences to `[f32]` of length `len`.
pub(crate) struct AlignedVec {
    lines: Vec<Line>,
    len: usize,
}

impl AlignedVec {
    /// `len` zeros.
    pub(crate) fn zeroed(len: usize) -> AlignedVec {
        AlignedVec {
            lines: vec![Line([0.0; PAD]); len.div_ceil(PAD)],
            len,
        }
    }

    /// The lines, each of 16 values (the last one zero beyond `len`).
    pub(crate) fn lines_mut(&mut self) -> &mut [Line] {
        &mut self.lines
    }
}

impl std::ops::Deref for AlignedVec {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        // SAFETY: `Line` is `repr(C)` around `[f32; 16]` with no padding
        // (its alignment, 64, is its size), so the lines are contiguous
        // `f32`s, and `len <= 16 * lines.len()`.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr() as *const f32, self.len) }
    }
}

impl std::ops::DerefMut for AlignedVec {
    fn deref_mut(&mut self) -> &mut [f32] {
        // SAFETY: as in `deref`, and the borrow is unique.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr() as *mut f32, self.len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_on_a_cache_line_and_holds_len_zeros() {
        for len in [0, 1, 15, 16, 17, 1000] {
            let mut v = AlignedVec::zeroed(len);
            assert_eq!(v.len(), len);
            assert!(v.iter().all(|&x| x == 0.0));
            assert_eq!(v.as_ptr() as usize % 64, 0);
            for (i, x) in v.iter_mut().enumerate() {
                *x = i as f32;
            }
            assert!(v.iter().enumerate().all(|(i, &x)| x == i as f32));
            // the padding of the last line stays zero
            let lines = v.lines_mut();
            assert_eq!(lines.len(), len.div_ceil(PAD));
            assert!(lines.iter().flat_map(|l| l.0).skip(len).all(|x| x == 0.0));
        }
    }
}
