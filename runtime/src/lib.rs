//! kiln-runtime: loads and runs .kiln artifacts (later issues).
