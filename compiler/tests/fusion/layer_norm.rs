//! `layer_norm` fusion tests.
