//! `rope` fusion tests.
