//! CPU features an artifact's code needs, as a bitmask stored in the header.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Features(u64);

/// (bit, name) of every feature kiln's code generators may use.
pub const FEATURES: [(u64, &str); 9] = [
    (1 << 0, "sse4.2"),
    (1 << 1, "avx"),
    (1 << 2, "avx2"),
    (1 << 3, "fma"),
    (1 << 4, "f16c"),
    (1 << 5, "avx512f"),
    (1 << 6, "avx512bw"),
    (1 << 7, "avx512dq"),
    (1 << 8, "avx512vl"),
];

impl Features {
    pub const NONE: Features = Features(0);

    pub fn from_bits(b: u64) -> Features {
        Features(b)
    }

    pub fn bits(self) -> u64 {
        self.0
    }

    pub fn from_names(names: &[&str]) -> Result<Features, String> {
        let mut bits = 0;
        for n in names {
            let (b, _) = FEATURES
                .iter()
                .find(|(_, name)| name == n)
                .ok_or_else(|| format!("unknown CPU feature `{n}`"))?;
            bits |= b;
        }
        Ok(Features(bits))
    }

    pub fn names(self) -> Vec<&'static str> {
        FEATURES
            .iter()
            .filter(|(b, _)| self.0 & b != 0)
            .map(|(_, n)| *n)
            .collect()
    }

    /// Features this CPU has.
    pub fn host() -> Features {
        let mut bits = 0;
        #[cfg(target_arch = "x86_64")]
        {
            macro_rules! probe {
                ($($bit:expr => $name:tt),*) => {
                    $( if std::arch::is_x86_feature_detected!($name) { bits |= $bit; } )*
                };
            }
            probe!(1 << 0 => "sse4.2", 1 << 1 => "avx", 1 << 2 => "avx2", 1 << 3 => "fma",
                   1 << 4 => "f16c", 1 << 5 => "avx512f", 1 << 6 => "avx512bw",
                   1 << 7 => "avx512dq", 1 << 8 => "avx512vl");
        }
        Features(bits)
    }

    /// The features of `self` that `have` lacks.
    pub fn missing_from(self, have: Features) -> Features {
        Features(self.0 & !have.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for Features {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("(none)");
        }
        let mut names: Vec<String> = self.names().iter().map(|n| n.to_string()).collect();
        let known = FEATURES.iter().fold(0, |acc, (b, _)| acc | b);
        let unknown = self.0 & !known;
        if unknown != 0 {
            // A newer compiler's feature: name its bits rather than print nothing.
            names.push(format!("unknown feature bits {unknown:#x}"));
        }
        f.write_str(&names.join(", "))
    }
}
