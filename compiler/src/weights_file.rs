//! .kir files on disk: the IR text, plus its weights in a file beside it.
//!
//! `model.kir` holds the text IR (see `kiln_ir::text`); the tensors its `@weight("name")`
//! constants refer to are in `model.kir.weights`, a safetensors file (a standard container
//! other tools read: Python's `safetensors.numpy.load_file("model.kir.weights")`). The text
//! never names the weights file, so the same graph always prints the same .kir bytes.
//!
//! A weight the text refers to but the weights file lacks (or no weights file at all) is
//! fine for reading and printing: the constant keeps its printed type. Running such a graph
//! fails at that constant ("weight \"x\" has no data").

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kiln_ir::graph::WeightStore;
use kiln_ir::{Attr, DType, Graph, Tensor};
use safetensors::tensor::{Dtype as StDtype, SafeTensors, View};

use crate::error::CompileError;

/// The weights file of a .kir file: `<path>.weights`.
pub fn weights_path(kir: &Path) -> PathBuf {
    let mut s = kir.as_os_str().to_owned();
    s.push(".weights");
    PathBuf::from(s)
}

/// The weight names the graph's nodes refer to (`@weight("name")` attributes), sorted.
pub fn referenced_weights(g: &Graph) -> BTreeSet<Arc<str>> {
    let mut names = BTreeSet::new();
    for id in g.node_ids() {
        for a in g.node(id).attrs.values() {
            if let Attr::Weight(name) = a {
                names.insert(name.clone());
            }
        }
    }
    names
}

fn to_st_dtype(d: DType) -> Option<StDtype> {
    Some(match d {
        DType::F32 => StDtype::F32,
        DType::F64 => StDtype::F64,
        DType::F16 => StDtype::F16,
        DType::BF16 => StDtype::BF16,
        DType::F8E4M3FN => StDtype::F8_E4M3,
        DType::F8E5M2 => StDtype::F8_E5M2,
        DType::I8 => StDtype::I8,
        DType::I16 => StDtype::I16,
        DType::I32 => StDtype::I32,
        DType::I64 => StDtype::I64,
        DType::U8 => StDtype::U8,
        DType::U16 => StDtype::U16,
        DType::U32 => StDtype::U32,
        DType::U64 => StDtype::U64,
        DType::Bool => StDtype::BOOL,
        DType::F8E4M3FNUZ | DType::F8E5M2FNUZ => return None,
    })
}

fn from_st_dtype(d: StDtype) -> Option<DType> {
    Some(match d {
        StDtype::F32 => DType::F32,
        StDtype::F64 => DType::F64,
        StDtype::F16 => DType::F16,
        StDtype::BF16 => DType::BF16,
        StDtype::F8_E4M3 => DType::F8E4M3FN,
        StDtype::F8_E5M2 => DType::F8E5M2,
        StDtype::I8 => DType::I8,
        StDtype::I16 => DType::I16,
        StDtype::I32 => DType::I32,
        StDtype::I64 => DType::I64,
        StDtype::U8 => DType::U8,
        StDtype::U16 => DType::U16,
        StDtype::U32 => DType::U32,
        StDtype::U64 => DType::U64,
        StDtype::BOOL => DType::Bool,
        _ => return None,
    })
}

/// A weight as safetensors writes it: its bytes are made when the writer asks for them, one
/// tensor at a time, so writing never holds a second copy of all the weights.
struct WeightView {
    dtype: StDtype,
    tensor: Arc<Tensor>,
}

impl View for WeightView {
    fn dtype(&self) -> StDtype {
        self.dtype
    }

    fn shape(&self) -> &[usize] {
        self.tensor.shape()
    }

    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.tensor.to_le_bytes())
    }

    fn data_len(&self) -> usize {
        self.tensor.len() * self.tensor.dtype().size()
    }
}

/// Writes `g` as text to `path` and, if the graph refers to weights the store holds, those
/// weights to `<path>.weights` (a stale weights file is removed when there are none).
pub fn write_kir(g: &Graph, path: &Path) -> Result<(), CompileError> {
    let text = kiln_ir::text::print(g);
    let wpath = weights_path(path);
    let mut views: Vec<(String, WeightView)> = Vec::new();
    for name in referenced_weights(g) {
        let Some(t) = g.weights.get(&name) else {
            continue;
        };
        let dtype = to_st_dtype(t.dtype()).ok_or_else(|| {
            CompileError::Unsupported(format!(
                "{}: weight \"{name}\" has dtype {}, which a safetensors weights file cannot hold",
                wpath.display(),
                t.dtype()
            ))
        })?;
        let view = WeightView {
            dtype,
            tensor: t.clone(),
        };
        views.push((name.to_string(), view));
    }
    if views.is_empty() {
        match std::fs::remove_file(&wpath) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(CompileError::io(&wpath, e)),
        }
    } else {
        safetensors::serialize_to_file(views, None, &wpath).map_err(|e| CompileError::File {
            path: wpath.display().to_string(),
            msg: e.to_string(),
        })?;
    }
    std::fs::write(path, text).map_err(|e| CompileError::io(path, e))
}

/// Reads the weights file at `path` into a store.
pub fn read_weights(path: &Path) -> Result<WeightStore, CompileError> {
    let bytes = std::fs::read(path).map_err(|e| CompileError::io(path, e))?;
    let file_err = |msg: String| CompileError::File {
        path: path.display().to_string(),
        msg,
    };
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| file_err(format!("not a safetensors file: {e}")))?;
    let mut store = WeightStore::default();
    for (name, view) in st.iter() {
        let dtype = from_st_dtype(view.dtype()).ok_or_else(|| {
            file_err(format!(
                "weight \"{name}\" has dtype {:?}, which kiln does not support",
                view.dtype()
            ))
        })?;
        let t = Tensor::from_le_bytes(dtype, view.shape().to_vec(), view.data())
            .map_err(|e| file_err(format!("weight \"{name}\": {e}")))?;
        store.set(name, Arc::new(t));
    }
    Ok(store)
}

/// Reads a .kir file and the weights file beside it, if any.
pub fn read_kir(path: &Path) -> Result<Graph, CompileError> {
    let text = std::fs::read_to_string(path).map_err(|e| CompileError::io(path, e))?;
    let wpath = weights_path(path);
    let store = if wpath.exists() {
        read_weights(&wpath)?
    } else {
        WeightStore::default()
    };
    kiln_ir::text::parse_with_weights(&text, store)
        .map_err(|e| CompileError::Parse(format!("{}:{e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_ir::tensor::Data;

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("kiln-weights-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    const TEXT: &str = "graph @w(%x: f32[2]) -> (a: f32[2], b: i64[3], c: bool[2], d: f8e4m3fn[2]) {\n  %0 = constant {value = @weight(\"a\")} : f32[2]\n  %1 = constant {value = @weight(\"b.0\")} : i64[3]\n  %2 = constant {value = @weight(\"c\")} : bool[2]\n  %3 = constant {value = @weight(\"d\")} : f8e4m3fn[2]\n  return %0, %1, %2, %3\n}\n";

    fn store() -> WeightStore {
        let mut s = WeightStore::default();
        s.set(
            "a",
            Arc::new(Tensor::from_f32s(vec![2], vec![1.5, -0.0]).unwrap()),
        );
        s.set(
            "b.0",
            Arc::new(Tensor::from_i64s(vec![3], vec![1, i64::MIN, 3]).unwrap()),
        );
        s.set(
            "c",
            Arc::new(Tensor::from_bools(vec![2], vec![true, false]).unwrap()),
        );
        s.set(
            "d",
            Arc::new(
                Tensor::with_dtype(DType::F8E4M3FN, vec![2], Data::F8(vec![0x38, 0xff])).unwrap(),
            ),
        );
        // Not referenced by the graph: not written.
        s.set("unused", Arc::new(Tensor::scalar_f32(1.0)));
        s
    }

    #[test]
    fn writes_and_reads_back_text_and_weights() {
        let dir = temp_dir("rw");
        let g = kiln_ir::text::parse_with_weights(TEXT, store()).unwrap();
        let a = dir.join("a.kir");
        write_kir(&g, &a).unwrap();
        assert_eq!(std::fs::read_to_string(&a).unwrap(), TEXT);
        let back = read_kir(&a).unwrap();
        assert_eq!(back.weights.len(), 4);
        for name in ["a", "b.0", "c", "d"] {
            assert_eq!(back.weights.get(name), g.weights.get(name), "{name}");
        }
        // Writing what was read gives the same bytes, text and weights.
        let b = dir.join("b.kir");
        write_kir(&back, &b).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        assert_eq!(
            std::fs::read(weights_path(&a)).unwrap(),
            std::fs::read(weights_path(&b)).unwrap()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn missing_weights_keep_their_types_and_stale_files_go() {
        let dir = temp_dir("missing");
        let a = dir.join("a.kir");
        std::fs::write(&a, TEXT).unwrap();
        let g = read_kir(&a).unwrap();
        assert!(g.weights.is_empty());
        assert_eq!(kiln_ir::text::print(&g), TEXT);
        // A graph without weight data writes no weights file, and removes a stale one.
        std::fs::write(weights_path(&a), b"stale").unwrap();
        write_kir(&g, &a).unwrap();
        assert!(!weights_path(&a).exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn unsupported_dtypes_and_bad_files_are_clear_errors() {
        let dir = temp_dir("bad");
        let text = "graph @w() -> (a: f8e5m2fnuz[1]) {\n  %0 = constant {value = @weight(\"z\")} : f8e5m2fnuz[1]\n  return %0\n}\n";
        let mut s = WeightStore::default();
        s.set(
            "z",
            Arc::new(Tensor::with_dtype(DType::F8E5M2FNUZ, vec![1], Data::F8(vec![1])).unwrap()),
        );
        let g = kiln_ir::text::parse_with_weights(text, s).unwrap();
        let a = dir.join("a.kir");
        let e = write_kir(&g, &a).unwrap_err().to_string();
        assert!(
            e.ends_with(
                "weight \"z\" has dtype f8e5m2fnuz, which a safetensors weights file cannot hold"
            ),
            "{e}"
        );
        std::fs::write(&a, text).unwrap();
        std::fs::write(weights_path(&a), b"garbage").unwrap();
        let e = read_kir(&a).unwrap_err().to_string();
        assert!(e.contains("a.kir.weights: not a safetensors file"), "{e}");
        std::fs::write(&a, "graph @g() -> () {\n  return %x\n}\n").unwrap();
        std::fs::remove_file(weights_path(&a)).unwrap();
        let e = read_kir(&a).unwrap_err().to_string();
        assert!(e.ends_with("a.kir:2:10: use of undefined value %x"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
