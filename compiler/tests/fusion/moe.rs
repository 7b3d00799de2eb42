//! `moe` fusion tests.
