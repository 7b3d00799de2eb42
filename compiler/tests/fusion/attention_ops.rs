//! `attention_ops` fusion tests.
