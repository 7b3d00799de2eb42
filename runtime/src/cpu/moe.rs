//! Mixture-of-experts kernel.
