//! The fixed-size header at the start of every .kiln file.
//!
//! ```text
//! offset size  field
//!      0    8  magic  b"KILNART\0"
//!      8    4  format version (u32 LE)
//!     12    4  target (u32 LE: 1 = cpu-x86_64, 2 = ascend)
//!     16    8  required CPU features (u64 LE bitmask, see `Features`)
//!     24   16  manifest: offset, length (u64 LE each)
//!     40   16  code: offset, length (page-aligned offset)
//!     56   16  weights: offset, length (page-aligned offset)
//!     72    8  checksum: FNV-1a 64 of header (this field zeroed) + manifest + code
//!     80   48  reserved, zero
//! ```
//! The weights are not in the checksum: they are mapped, and hashing them would read every
//! page at load.

use crate::artifact::features::Features;
use crate::error::RuntimeError;

pub const MAGIC: [u8; 8] = *b"KILNART\0";
pub const FORMAT_VERSION: u32 = 1;
pub const HEADER_LEN: usize = 128;
pub const PAGE: u64 = 4096;

/// What an artifact was compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    CpuX86_64,
    Ascend,
}

impl Target {
    pub fn code(self) -> u32 {
        match self {
            Target::CpuX86_64 => 1,
            Target::Ascend => 2,
        }
    }

    pub fn from_code(c: u32) -> Option<Target> {
        match c {
            1 => Some(Target::CpuX86_64),
            2 => Some(Target::Ascend),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Target::CpuX86_64 => "cpu-x86_64",
            Target::Ascend => "ascend",
        }
    }
}

/// A section's place in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Section {
    pub offset: u64,
    pub len: u64,
}

impl Section {
    fn end(self) -> Option<u64> {
        self.offset.checked_add(self.len)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub version: u32,
    pub target: Target,
    pub features: Features,
    pub manifest: Section,
    pub code: Section,
    pub weights: Section,
    pub checksum: u64,
}

impl Header {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&self.version.to_le_bytes());
        b[12..16].copy_from_slice(&self.target.code().to_le_bytes());
        b[16..24].copy_from_slice(&self.features.bits().to_le_bytes());
        for (i, s) in [self.manifest, self.code, self.weights].iter().enumerate() {
            let o = 24 + 16 * i;
            b[o..o + 8].copy_from_slice(&s.offset.to_le_bytes());
            b[o + 8..o + 16].copy_from_slice(&s.len.to_le_bytes());
        }
        b[72..80].copy_from_slice(&self.checksum.to_le_bytes());
        b
    }

    /// Decodes and checks a header against the file's length.
    pub fn decode(b: &[u8], file_len: u64) -> Result<Header, RuntimeError> {
        // Some other file, short or not, is not an artifact; a short one that starts like
        // an artifact is a truncated one.
        if b.len() >= MAGIC.len() && b[0..MAGIC.len()] != MAGIC {
            return Err(RuntimeError::NotAnArtifact);
        }
        if b.len() < HEADER_LEN {
            return Err(RuntimeError::Corrupt(format!(
                "file is {} bytes, shorter than the {HEADER_LEN}-byte header",
                b.len()
            )));
        }
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let u64_at = |o: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[o..o + 8]);
            u64::from_le_bytes(x)
        };
        let version = u32_at(8);
        if version != FORMAT_VERSION {
            return Err(RuntimeError::Version {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let target = Target::from_code(u32_at(12))
            .ok_or_else(|| RuntimeError::Corrupt(format!("unknown target code {}", u32_at(12))))?;
        let section = |i: usize| Section {
            offset: u64_at(24 + 16 * i),
            len: u64_at(32 + 16 * i),
        };
        let h = Header {
            version,
            target,
            features: Features::from_bits(u64_at(16)),
            manifest: section(0),
            code: section(1),
            weights: section(2),
            checksum: u64_at(72),
        };
        for (name, s, aligned) in [
            ("manifest", h.manifest, false),
            ("code", h.code, true),
            ("weights", h.weights, true),
        ] {
            match s.end() {
                Some(end) if end <= file_len && s.offset >= HEADER_LEN as u64 || s.len == 0 => {}
                _ => {
                    return Err(RuntimeError::Corrupt(format!(
                        "{name} section (offset {}, {} bytes) lies outside the {file_len}-byte file: truncated?",
                        s.offset, s.len
                    )))
                }
            }
            if aligned && s.offset % PAGE != 0 {
                return Err(RuntimeError::Corrupt(format!(
                    "{name} section offset {} is not page-aligned",
                    s.offset
                )));
            }
        }
        Ok(h)
    }
}

/// FNV-1a, 64-bit: simple, dependency-free, and enough to catch truncation and corruption
/// (not an integrity guarantee against an adversary).
pub fn fnv1a64(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &byte in *p {
            h ^= byte as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}
