use crate::ops::OpSpec;

pub const SPECS: &[OpSpec] = &[];
