//! Disjoint pieces of a product's output for the worker threads to write.
//!
//! A product's output is `[m, n]`: activation row after activation row. The work is split
//! by weight rows, so a worker's share is a column band (rows `row0..row0 + rows` of every
//! activation row), which is not a contiguous slice. Writing through [`OutRows`] puts each
//! value in its final place with no scratch matrix to allocate and transpose afterwards.

use std::marker::PhantomData;

/// Weight rows `row0..row0 + rows` of an `[m, n]` output, for every activation row.
///
/// Made only by [`OutRows::split`], from one exclusive borrow, in bands that do not
/// overlap: so each value has one writer, and none outlives the borrow.
pub(crate) struct OutRows<'a> {
    ptr: *mut f32,
    n: usize,
    m: usize,
    row0: usize,
    rows: usize,
    _out: PhantomData<&'a mut [f32]>,
}

// SAFETY: an `OutRows` is the only writer of its band (see `split`), like a `&mut` slice.
unsafe impl Send for OutRows<'_> {}

impl<'a> OutRows<'a> {
    /// Splits `out` (`[m, n]`) into bands of `chunk` weight rows (the last one shorter).
    pub(crate) fn split(out: &'a mut [f32], m: usize, n: usize, chunk: usize) -> Vec<Self> {
        assert!(out.len() == m * n && chunk > 0);
        let ptr = out.as_mut_ptr();
        (0..n)
            .step_by(chunk)
            .map(|row0| OutRows {
                ptr,
                n,
                m,
                row0,
                rows: chunk.min(n - row0),
                _out: PhantomData,
            })
            .collect()
    }

    /// The first weight row of the band.
    pub(crate) fn row0(&self) -> usize {
        self.row0
    }

    /// Weight rows in the band.
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// Activation rows.
    pub(crate) fn m(&self) -> usize {
        self.m
    }

    /// Sets the product of the band's weight row `i` with activation row `r`.
    #[inline(always)]
    pub(crate) fn set(&mut self, i: usize, r: usize, v: f32) {
        assert!(i < self.rows && r < self.m);
        // SAFETY: in bounds (`r * n + row0 + i < m * n`), and in this band only.
        unsafe { *self.ptr.add(r * self.n + self.row0 + i) = v }
    }

    /// Sets weight rows `i..i + vs.len()` of the band for activation row `r`.
    #[inline(always)]
    pub(crate) fn set_run(&mut self, i: usize, r: usize, vs: &[f32]) {
        assert!(i + vs.len() <= self.rows && r < self.m);
        // SAFETY: as in `set`, for each of the values.
        unsafe {
            let dst = self.ptr.add(r * self.n + self.row0 + i);
            std::ptr::copy_nonoverlapping(vs.as_ptr(), dst, vs.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_cover_every_value_once() {
        let (m, n) = (3, 10);
        let mut out = vec![0f32; m * n];
        for mut band in OutRows::split(&mut out, m, n, 4) {
            for i in 0..band.rows() {
                for r in 0..band.m() {
                    let at = (r * n + band.row0() + i) as f32;
                    band.set(i, r, at + 1.0);
                }
            }
        }
        let want: Vec<f32> = (1..=m * n).map(|v| v as f32).collect();
        assert_eq!(out, want);
    }

    #[test]
    #[should_panic]
    fn a_band_cannot_write_past_its_rows() {
        let mut out = vec![0f32; 20];
        let mut bands = OutRows::split(&mut out, 2, 10, 4);
        bands[2].set(2, 0, 1.0); // the last band has rows 8 and 9 only
    }
}
