//! `swiglu` fusion tests.
