//! Mixture-of-experts helpers: route, permute, grouped GEMM, combine.

use super::Helper;

pub(super) const HELPERS: &[Helper] = &[];
