//! Index helpers that are not plain gathers (TopK, ...).

use super::Helper;

pub(super) const HELPERS: &[Helper] = &[];
