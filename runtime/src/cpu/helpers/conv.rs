//! Convolution and pooling helpers.

use super::Helper;

pub(super) const HELPERS: &[Helper] = &[];
