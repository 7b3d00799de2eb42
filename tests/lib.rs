//! Shared helpers for kiln's integration tests live in the test files themselves.
