//! Writing and opening .kiln files. Opening checks the header, the checksum and the CPU
//! features before anything is mapped executable; weights are mapped, never read.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use memmap2::{Mmap, MmapOptions};

use crate::artifact::features::Features;
use crate::artifact::header::{fnv1a64, Header, Section, Target, FORMAT_VERSION, HEADER_LEN, PAGE};
use crate::error::RuntimeError;

/// The parts of an artifact, as a target's writer hands them over.
pub struct ArtifactParts<'a> {
    pub target: Target,
    pub features: Features,
    pub manifest: &'a [u8],
    pub code: &'a [u8],
    pub weights: &'a [u8],
}

fn align_up(x: u64) -> u64 {
    x.div_ceil(PAGE) * PAGE
}

/// Writes an artifact: header, manifest, then code and weights each page-aligned.
pub fn write_artifact(path: &Path, parts: &ArtifactParts) -> Result<(), RuntimeError> {
    let manifest = Section {
        offset: HEADER_LEN as u64,
        len: parts.manifest.len() as u64,
    };
    let code = Section {
        offset: align_up(manifest.offset + manifest.len),
        len: parts.code.len() as u64,
    };
    let weights = Section {
        offset: align_up(code.offset + code.len),
        len: parts.weights.len() as u64,
    };
    let mut header = Header {
        version: FORMAT_VERSION,
        target: parts.target,
        features: parts.features,
        manifest,
        code,
        weights,
        checksum: 0,
    };
    header.checksum = fnv1a64(&[&header.encode(), parts.manifest, parts.code]);
    let io = |e| RuntimeError::io(path, e);
    let mut f = File::create(path).map_err(io)?;
    f.write_all(&header.encode()).map_err(io)?;
    f.write_all(parts.manifest).map_err(io)?;
    for (s, bytes) in [(code, parts.code), (weights, parts.weights)] {
        f.seek(SeekFrom::Start(s.offset)).map_err(io)?;
        f.write_all(bytes).map_err(io)?;
    }
    f.set_len(weights.offset + weights.len).map_err(io)?;
    f.sync_all().map_err(io)
}

/// The signature of every generated function: it reads its arguments from a frame of
/// 64-bit slots (pointers and sizes) laid out by the runtime.
pub type FrameFn = unsafe extern "C" fn(frame: *const u64);

/// An opened, verified artifact.
pub struct ArtifactFile {
    pub header: Header,
    pub manifest: Vec<u8>,
    /// The code, mapped executable (absent when the artifact has none).
    pub code: Option<Mmap>,
    /// The weights, mapped read-only (absent when the artifact has none).
    pub weights: Option<Mmap>,
}

impl ArtifactFile {
    /// Opens `path`, requiring the CPU features `host` has.
    pub fn open_with_features(path: &Path, host: Features) -> Result<ArtifactFile, RuntimeError> {
        let io = |e| RuntimeError::io(path, e);
        let mut f = File::open(path).map_err(io)?;
        let file_len = f.metadata().map_err(io)?.len();
        let mut head = vec![0u8; HEADER_LEN.min(file_len as usize)];
        f.read_exact(&mut head).map_err(io)?;
        let header = Header::decode(&head, file_len)?;
        let mut manifest = vec![0u8; header.manifest.len as usize];
        f.seek(SeekFrom::Start(header.manifest.offset))
            .map_err(io)?;
        f.read_exact(&mut manifest).map_err(io)?;
        // The code is checksummed through the same mapping that is later made executable, so
        // what was checked is what runs.
        let code_ro = if header.code.len > 0 {
            // SAFETY: a private (copy-on-write) mapping of a file range inside the file (checked by
            // Header::decode). The file must not be truncated while mapped; kiln never writes
            // an artifact in place.
            Some(
                unsafe {
                    MmapOptions::new()
                        .offset(header.code.offset)
                        .len(header.code.len as usize)
                        .map_copy(&f)
                }
                .map_err(io)?,
            )
        } else {
            None
        };
        let mut zeroed = header.clone();
        zeroed.checksum = 0;
        let sum = fnv1a64(&[
            &zeroed.encode(),
            &manifest,
            code_ro.as_deref().unwrap_or(&[]),
        ]);
        if sum != header.checksum {
            return Err(RuntimeError::Corrupt(format!(
                "checksum mismatch (file says {:016x}, contents give {sum:016x}): the file is damaged",
                header.checksum
            )));
        }
        let missing = header.features.missing_from(host);
        if !missing.is_empty() {
            return Err(RuntimeError::CpuFeatures {
                missing: missing.to_string(),
            });
        }
        let code = match code_ro {
            Some(m) => Some(m.make_exec().map_err(io)?),
            None => None,
        };
        let weights = if header.weights.len > 0 {
            // SAFETY: as for the code: a read-only mapping of a checked range of the file.
            Some(
                unsafe {
                    MmapOptions::new()
                        .offset(header.weights.offset)
                        .len(header.weights.len as usize)
                        .map(&f)
                }
                .map_err(io)?,
            )
        } else {
            None
        };
        Ok(ArtifactFile {
            header,
            manifest,
            code,
            weights,
        })
    }

    /// The generated function at `offset` in the code section, if the offset is inside it.
    ///
    /// Calling it is unsafe: the frame must be what that function expects.
    pub fn function(&self, offset: usize) -> Option<FrameFn> {
        let code = self.code.as_ref()?;
        if offset >= code.len() {
            return None;
        }
        // SAFETY: the code section is mapped executable and checksummed; the offset lies
        // inside it. Whether it is the start of a function is the manifest's promise, which
        // the checksum covers.
        Some(unsafe { std::mem::transmute::<*const u8, FrameFn>(code.as_ptr().add(offset)) })
    }

    /// Opens `path` on this CPU.
    pub fn open(path: &Path) -> Result<ArtifactFile, RuntimeError> {
        ArtifactFile::open_with_features(path, Features::host())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(dir: &Path, features: Features) -> std::path::PathBuf {
        let path = dir.join("a.kiln");
        write_artifact(
            &path,
            &ArtifactParts {
                target: Target::CpuX86_64,
                features,
                manifest: b"{\"hello\":1}",
                code: &[0xC3; 10],
                weights: &[7u8; 5000],
            },
        )
        .unwrap();
        path
    }

    fn tmp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("kiln-artifact-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn round_trips_and_maps() {
        let d = tmp("rt");
        let a = ArtifactFile::open(&sample(&d, Features::NONE)).unwrap();
        assert_eq!(a.manifest, b"{\"hello\":1}");
        assert_eq!(a.code.as_deref(), Some(&[0xC3u8; 10][..]));
        assert_eq!(a.weights.as_ref().map(|w| w.len()), Some(5000));
        assert_eq!(a.header.code.offset % PAGE, 0);
        assert_eq!(a.header.weights.offset % PAGE, 0);
    }

    #[test]
    fn rejects_damage() {
        let d = tmp("bad");
        let path = sample(&d, Features::NONE);
        let good = std::fs::read(&path).unwrap();
        let err = |bytes: &[u8]| {
            std::fs::write(&path, bytes).unwrap();
            ArtifactFile::open(&path)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(err(&good[..50]).contains("shorter than the 128-byte header"));
        assert!(err(&good[..good.len() - 10]).contains("outside the"));
        let mut b = good.clone();
        b[0] = b'X';
        assert_eq!(err(&b), "not a kiln artifact (bad magic)");
        let mut b = good.clone();
        b[8] = 9;
        assert_eq!(
            err(&b),
            "artifact format version 9 is not supported (this runtime reads version 1)"
        );
        let mut b = good.clone();
        b[HEADER_LEN + 2] ^= 1;
        assert!(err(&b).starts_with("corrupt artifact: checksum mismatch"));
        std::fs::write(&path, &good).unwrap();
        let path = sample(&d, Features::from_names(&["avx512f"]).unwrap());
        let e = ArtifactFile::open_with_features(&path, Features::NONE)
            .err()
            .unwrap();
        assert_eq!(
            e.to_string(),
            "the artifact needs CPU features this machine lacks: avx512f"
        );
    }
}
