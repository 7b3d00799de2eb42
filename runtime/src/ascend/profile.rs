//! Hardware profiles of the Ascend NPUs kiln targets: the numbers the device model enforces
//! (buffer sizes, alignments, core counts) and the cost model prices with (clock, bandwidths).
//!
//! Sources, cited per field below:
//! - [ini]: CANN's platform configuration files (`data/platform_config/Ascend910B2.ini`,
//!   `Ascend910B4.ini`, `Ascend910_9392.ini`), `[SoCInfo]` and `[AICoreSpec]` sections, as
//!   quoted in public Ascend kernel tutorials and tools (e.g. the PTO-ISA and catlass docs).
//! - [spec]: public product listings of the Atlas 800T A2 / A3 servers; these disagree by
//!   up to 30 % on HBM bandwidth, so the figure used is the one most of them give.
//! - [est]: kiln's own estimate where no public number exists; used only by the cost model.

use serde::Serialize;

/// One Ascend chip (or, for the A3, one die: each die is a device of its own to CANN).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Profile {
    /// The name `--target` takes: `ascend910b2`, ...
    pub name: &'static str,
    /// CANN's SoC_version.
    pub soc_version: &'static str,
    /// Cube (AIC) cores: what blockDim counts for AIC and MIX kernels.
    pub aic_cores: u32,
    /// Vector (AIV) cores: what blockDim counts for AIV kernels (two per AIC).
    pub aiv_cores: u32,
    /// AI core clock, Hz.
    pub clock_hz: f64,
    pub l1_bytes: u64,
    pub l0a_bytes: u64,
    pub l0b_bytes: u64,
    pub l0c_bytes: u64,
    /// Unified buffer of each AIV core.
    pub ub_bytes: u64,
    pub l2_bytes: u64,
    pub hbm_bytes: u64,
    /// HBM bandwidth, bytes per second.
    pub hbm_bytes_per_s: f64,
    /// Alignment of tile addresses in UB and L1 (one 32-byte block).
    pub ub_align: u64,
    pub l1_align: u64,
    /// Alignment of tiles in L0A / L0B: one 16x16 fp16 fractal (512 bytes).
    pub l0ab_align: u64,
    /// Alignment of tiles in L0C.
    pub l0c_align: u64,
    /// Alignment every tensor's address in global memory (HBM) must have.
    pub gm_align: u64,
    /// The cube's fractal for fp16/bf16: M, N, K elements (one mmad step per cycle).
    pub cube_mnk: [u64; 3],
    /// Bytes the vector unit processes per cycle per AIV core.
    pub vector_bytes_per_cycle: u64,
    /// Bytes per cycle one core moves between global memory (through L2) and its local
    /// buffers (MTE2 in, MTE3 out).
    pub gm_bytes_per_cycle: u64,
    /// Bytes per cycle L1 -> L0A/L0B (MTE1).
    pub l1_to_l0_bytes_per_cycle: u64,
    /// Bytes per cycle L0C -> global memory (fixpipe).
    pub fixpipe_bytes_per_cycle: u64,
    /// Device-side cost of starting one kernel, seconds.
    pub launch_s: f64,
}

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

/// Ascend 910B2 (Atlas 800T A2).
pub const ASCEND910B2: Profile = Profile {
    name: "ascend910b2",
    soc_version: "Ascend910B2",
    aic_cores: 24,                 // [ini] cube_core_cnt=24
    aiv_cores: 48,                 // [ini] vector_core_cnt=48
    clock_hz: 1.8e9,               // [ini] cube_freq=1800
    l1_bytes: 512 * KIB,           // [ini] l1_size=524288
    l0a_bytes: 64 * KIB,           // [ini] l0_a_size=65536
    l0b_bytes: 64 * KIB,           // [ini] l0_b_size=65536
    l0c_bytes: 128 * KIB,          // [ini] l0_c_size=131072
    ub_bytes: 192 * KIB,           // [ini] ub_size=196608
    l2_bytes: 192 * MIB,           // [ini] l2_size=201326592
    hbm_bytes: 64 * GIB,           // [ini] memory_size=68719476736
    hbm_bytes_per_s: 1.6e12,       // [spec] HBM2e, 1.6 TB/s
    ub_align: 32,                  // [ini] ubblock_size=32
    l1_align: 32,                  // [ini] L1 addresses in 32-byte blocks, as UB
    l0ab_align: 512,               // [ini] cube_m/n/k_size=16: one 16x16 fp16 fractal
    l0c_align: 64,                 // [est] 16 fp32 accumulators, one L0C bank row
    gm_align: 32,                  // [ini] DataCopy moves 32-byte blocks
    cube_mnk: [16, 16, 16],        // [ini] [DtypeMKN] Default=16,16,16
    vector_bytes_per_cycle: 256,   // [ini] vec_calc_size=128 (fp16 elements)
    gm_bytes_per_cycle: 128,       // [est] per-core MTE2/MTE3 through L2
    l1_to_l0_bytes_per_cycle: 512, // [est] MTE1, one fractal per cycle
    fixpipe_bytes_per_cycle: 64,   // [est] L0C -> GM with conversion
    launch_s: 2.0e-6,              // [est] task scheduling, per kernel
};

/// Ascend 910B4: 20 AIC / 40 AIV, half the HBM and L2 of the 910B2, lower clock.
pub const ASCEND910B4: Profile = Profile {
    name: "ascend910b4",
    soc_version: "Ascend910B4",
    aic_cores: 20,            // [ini] cube_core_cnt=20
    aiv_cores: 40,            // [ini] vector_core_cnt=40
    clock_hz: 1.5e9,          // [ini] cube_freq=1500
    l2_bytes: 96 * MIB,       // [ini] l2_size=100663296
    hbm_bytes: 32 * GIB,      // [ini] memory_size=34359738368
    hbm_bytes_per_s: 0.96e12, // [ini] ddr_rate=32 B/cycle/core x 20 x 1.5 GHz
    ..ASCEND910B2
};

/// Ascend 910_93 (Atlas A3, "910C"): two dies per package; CANN sees each die as one
/// device with the 910B2's cores and buffers.
pub const ASCEND910_93: Profile = Profile {
    name: "ascend910_93",
    soc_version: "Ascend910_9392",
    aic_cores: 24,           // [ini] Ascend910_9392 cube_core_cnt=24
    aiv_cores: 48,           // [ini] vector_core_cnt=48
    hbm_bytes: 64 * GIB,     // [spec] 128 GB per package, two dies
    hbm_bytes_per_s: 1.6e12, // [spec] 3.2 TB/s per package, two dies
    ..ASCEND910B2
};

/// Every profile, by `--target` name.
pub const PROFILES: &[&Profile] = &[&ASCEND910B2, &ASCEND910B4, &ASCEND910_93];

impl Profile {
    /// The profile `--target` calls `name`.
    pub fn by_name(name: &str) -> Option<&'static Profile> {
        PROFILES.iter().copied().find(|p| p.name == name)
    }

    /// The names of every profile, for error messages.
    pub fn names() -> Vec<&'static str> {
        PROFILES.iter().map(|p| p.name).collect()
    }

    /// Cores available to a kernel of this core type (the bound on its blockDim).
    pub fn cores(&self, core: crate::ascend::descriptor::CoreType) -> u32 {
        use crate::ascend::descriptor::CoreType;
        match core {
            CoreType::Aic | CoreType::Mix => self.aic_cores,
            CoreType::Aiv => self.aiv_cores,
        }
    }

    /// Peak cube throughput, fp16 flops per second (2 flops per multiply-add).
    pub fn cube_peak_flops(&self) -> f64 {
        let [m, n, k] = self.cube_mnk;
        self.aic_cores as f64 * (m * n * k) as f64 * 2.0 * self.clock_hz
    }
}
