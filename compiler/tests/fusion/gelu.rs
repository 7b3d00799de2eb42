//! `gelu` fusion tests.
