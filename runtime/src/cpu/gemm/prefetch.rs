//! Fetching the part of B a task reads next into L2 while its current block runs: a weight
//! read for the first time comes from L3 or memory, which the hardware prefetcher does not
//! run far enough ahead of the microkernel to hide.

use super::NR;

/// Cache lines (16 floats each, consecutive from `at`) for a microkernel to fetch into L2
/// while it computes, at most one per step of its K loop. Only a hint: prefetching never
/// faults, so the addresses need not be valid.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Prefetch {
    at: *const f32,
    pub(crate) lines: usize,
}

impl Prefetch {
    pub(crate) const NONE: Prefetch = Prefetch {
        at: std::ptr::null(),
        lines: 0,
    };

    /// Line `i` (`< lines`).
    pub(crate) fn line(self, i: usize) -> *const i8 {
        self.at.wrapping_add(16 * i).cast()
    }
}

/// The B panels `q0..q1`, rows `row0..row0+rows`, handed out a slice per microkernel call
/// over `calls` calls. Each panel gets an equal share of the calls, so with at least one
/// call per panel every line is handed out once within `calls` calls.
pub(crate) struct NextBlock {
    b: *const f32,
    k: usize,
    row0: usize,
    /// Lines per panel (`rows * NR / 16`).
    panel_lines: usize,
    /// The next line to hand out: panel `q`, line `line` of it.
    q: usize,
    line: usize,
    q1: usize,
    per_call: usize,
}

impl NextBlock {
    pub(crate) const EMPTY: NextBlock = NextBlock {
        b: std::ptr::null(),
        k: 0,
        row0: 0,
        panel_lines: 0,
        q: 0,
        line: 0,
        q1: 0,
        per_call: 0,
    };

    pub(crate) fn new(
        b: *const f32,
        k: usize,
        (q0, q1): (usize, usize),
        (row0, rows): (usize, usize),
        calls: usize,
    ) -> NextBlock {
        let panel_lines = rows * NR / 16;
        NextBlock {
            b,
            k,
            row0,
            panel_lines,
            q: q0,
            line: 0,
            q1,
            per_call: panel_lines.div_ceil((calls / (q1 - q0).max(1)).max(1)),
        }
    }

    /// The next call's slice: consecutive lines inside one panel.
    pub(crate) fn take(&mut self) -> Prefetch {
        if self.q >= self.q1 || self.panel_lines == 0 {
            return Prefetch::NONE;
        }
        let lines = self.per_call.min(self.panel_lines - self.line);
        let at = self
            .b
            .wrapping_add((self.q * self.k + self.row0) * NR + self.line * 16);
        self.line += lines;
        if self.line == self.panel_lines {
            self.q += 1;
            self.line = 0;
        }
        Prefetch { at, lines }
    }
}
