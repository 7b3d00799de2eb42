//! `moe_ops` fusion tests.
