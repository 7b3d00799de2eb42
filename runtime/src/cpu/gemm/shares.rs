//! Sharing a GEMM's panels (B's column panels to multiply, A's row panels to pack) among
//! threads.

use std::sync::atomic::{AtomicU64, Ordering};

/// A GEMM's panels, split among threads: each owns a contiguous share that it works
/// through from the front, a block of panels at a time, and a thread done with its own
/// takes blocks from the back of the share with the most left. A core slowed by another
/// process then does less of the work instead of holding the others up at the join (on a
/// shared machine, MiniLM's two halves often differ by 10-15%), and each thread still
/// walks consecutive blocks, so [`super::prefetch::NextBlock`] knows what to prefetch.
pub(crate) struct PanelShares {
    /// Per share, its panels left `lo..hi` as `hi << 32 | lo`.
    left: Vec<AtomicU64>,
    block: usize,
}

impl PanelShares {
    pub(crate) fn new(panels: usize, threads: usize, block: usize) -> PanelShares {
        assert!(panels < 1 << 32, "sgemm: {panels} panels");
        let left = (0..threads)
            .map(|t| AtomicU64::new(Self::word(panels * t / threads, panels * (t + 1) / threads)))
            .collect();
        PanelShares { left, block }
    }

    fn word(lo: usize, hi: usize) -> u64 {
        (hi as u64) << 32 | lo as u64
    }

    fn range(word: u64) -> (usize, usize) {
        ((word & 0xffff_ffff) as usize, (word >> 32) as usize)
    }

    /// The next block from the front of share `t`.
    pub(crate) fn take_own(&self, t: usize) -> Option<(usize, usize)> {
        let mut w = self.left[t].load(Ordering::Relaxed);
        loop {
            let (lo, hi) = Self::range(w);
            if lo >= hi {
                return None;
            }
            let end = (lo + self.block).min(hi);
            match self.left[t].compare_exchange_weak(
                w,
                Self::word(end, hi),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some((lo, end)),
                Err(now) => w = now,
            }
        }
    }

    /// The block share `t` would hand out next (nothing taken).
    pub(crate) fn peek_own(&self, t: usize) -> Option<(usize, usize)> {
        let (lo, hi) = Self::range(self.left[t].load(Ordering::Relaxed));
        (lo < hi).then(|| (lo, (lo + self.block).min(hi)))
    }

    /// A block from the back of the share with the most panels left.
    pub(crate) fn steal(&self) -> Option<(usize, usize)> {
        loop {
            let (share, w) = self
                .left
                .iter()
                .enumerate()
                .map(|(i, a)| (i, a.load(Ordering::Relaxed)))
                .max_by_key(|&(_, w)| {
                    let (lo, hi) = Self::range(w);
                    hi.saturating_sub(lo)
                })?;
            let (lo, hi) = Self::range(w);
            if lo >= hi {
                return None;
            }
            let start = hi.saturating_sub(self.block).max(lo);
            if self.left[share]
                .compare_exchange(
                    w,
                    Self::word(lo, start),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                return Some((start, hi));
            }
        }
    }
}
