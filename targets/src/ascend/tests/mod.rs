//! Tests of the target and the device model together: descriptors the device model must
//! reject, the cost model, snapshots of launch lists.

mod cost;
mod rejects;
mod snapshots;
