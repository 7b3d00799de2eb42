//! Fusion rule tests: for each rule, graphs in IR text (several sizes, exporters' spellings,
//! near misses that must not fuse), snapshotted before and after, and checked on the
//! reference interpreter: the fused graph computes what the original did.

mod support;

mod rms_norm;
