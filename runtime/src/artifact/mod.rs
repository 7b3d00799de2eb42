//! The .kiln artifact: one file with a header, a manifest, page-aligned code and
//! page-aligned weights. kiln-runtime owns the format; kiln-targets writes it.

pub mod features;
pub mod file;
pub mod header;

pub use features::Features;
pub use file::{write_artifact, ArtifactFile, ArtifactParts};
pub use header::{Header, Target};
