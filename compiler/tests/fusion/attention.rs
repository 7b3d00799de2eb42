//! `attention` fusion tests.
