//! The Cranelift ISA for a kiln CPU target, with every feature flag set explicitly.
//!
//! Cranelift's `x86-64-v3`/`v4` presets leave out `has_avx`, and without it f32x4 `fma`
//! becomes four libcalls; so kiln never uses presets and names each flag.

use cranelift_codegen::isa::{self, OwnedTargetIsa};
use cranelift_codegen::settings::{self, Configurable};

use crate::error::TargetError;

/// x86-64 features the generated code may use (a subset of kiln-runtime's `Features`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CpuFeatures {
    pub sse41: bool,
    pub avx: bool,
    pub avx2: bool,
    pub fma: bool,
    pub avx512f: bool,
    pub avx512vl: bool,
    pub avx512dq: bool,
}

impl CpuFeatures {
    /// What this machine has.
    pub fn host() -> CpuFeatures {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            CpuFeatures {
                sse41: has!("sse4.1"),
                avx: has!("avx"),
                avx2: has!("avx2"),
                fma: has!("fma"),
                avx512f: has!("avx512f"),
                avx512vl: has!("avx512vl"),
                avx512dq: has!("avx512dq"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        CpuFeatures::default()
    }

    /// The runtime's names for these features (as the artifact header records them).
    pub fn names(self) -> Vec<&'static str> {
        [
            (self.sse41, "sse4.2"),
            (self.avx, "avx"),
            (self.avx2, "avx2"),
            (self.fma, "fma"),
            (self.avx512f, "avx512f"),
            (self.avx512vl, "avx512vl"),
            (self.avx512dq, "avx512dq"),
        ]
        .into_iter()
        .filter_map(|(on, n)| on.then_some(n))
        .collect()
    }
}

/// Builds the x86-64 ISA for `features`, optimising for speed.
pub fn x86_64_isa(features: CpuFeatures) -> Result<OwnedTargetIsa, TargetError> {
    let err = |e: &dyn std::fmt::Display| TargetError::Isa(e.to_string());
    let mut shared = settings::builder();
    shared.set("opt_level", "speed").map_err(|e| err(&e))?;
    shared.set("enable_verifier", "true").map_err(|e| err(&e))?;
    let mut b = isa::lookup_by_name("x86_64").map_err(|e| err(&e))?;
    let flags = [
        ("has_sse3", features.sse41),
        ("has_ssse3", features.sse41),
        ("has_sse41", features.sse41),
        ("has_sse42", features.sse41),
        ("has_avx", features.avx),
        ("has_avx2", features.avx2),
        ("has_fma", features.fma),
        ("has_avx512f", features.avx512f),
        ("has_avx512vl", features.avx512vl),
        ("has_avx512dq", features.avx512dq),
    ];
    for (name, on) in flags {
        b.set(name, if on { "true" } else { "false" })
            .map_err(|e| err(&e))?;
    }
    b.finish(settings::Flags::new(shared)).map_err(|e| err(&e))
}
