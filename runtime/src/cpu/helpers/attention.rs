//! Attention helpers: the tiled online-softmax kernel behind attention steps.

use super::Helper;

pub(super) const HELPERS: &[Helper] = &[];
