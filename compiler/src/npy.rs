//! Reading and writing .npy files (numpy's array format, versions 1.0, 2.0 and 3.0).
//!
//! Reads little- and big-endian data of dtypes f2/f4/f8, i1/i2/i4/i8, u1/u2/u4/u8 and b1,
//! in C order or Fortran order (transposed into C order). Writes version 1.0 (2.0 when the
//! header needs it), little-endian, C order. bf16 and fp8 have no numpy dtype: writing them
//! is an error.

use std::path::Path;

use kiln_ir::{DType, Tensor};

const MAGIC: &[u8] = b"\x93NUMPY";

/// An error about one .npy file: `path: problem`, on one line.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {msg}")]
pub struct NpyError {
    pub path: String,
    pub msg: String,
}

fn err(path: &str, msg: impl Into<String>) -> NpyError {
    NpyError {
        path: path.to_string(),
        msg: msg.into(),
    }
}

/// Reads a .npy file.
pub fn read(path: &Path) -> Result<Tensor, NpyError> {
    let p = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| err(&p, e.to_string()))?;
    decode(&bytes).map_err(|m| err(&p, m))
}

/// Writes a tensor as a .npy file.
pub fn write(path: &Path, t: &Tensor) -> Result<(), NpyError> {
    let p = path.display().to_string();
    let bytes = encode(t).map_err(|m| err(&p, m))?;
    std::fs::write(path, bytes).map_err(|e| err(&p, e.to_string()))
}

/// The numpy type string (little-endian) of a dtype, if numpy has one.
pub fn descr(dtype: DType) -> Option<&'static str> {
    Some(match dtype {
        DType::F16 => "<f2",
        DType::F32 => "<f4",
        DType::F64 => "<f8",
        DType::I8 => "|i1",
        DType::I16 => "<i2",
        DType::I32 => "<i4",
        DType::I64 => "<i8",
        DType::U8 => "|u1",
        DType::U16 => "<u2",
        DType::U32 => "<u4",
        DType::U64 => "<u8",
        DType::Bool => "|b1",
        _ => return None,
    })
}

/// Serializes a tensor to .npy bytes.
pub fn encode(t: &Tensor) -> Result<Vec<u8>, String> {
    let d = descr(t.dtype()).ok_or_else(|| {
        format!(
            "dtype {} has no .npy equivalent (numpy has no {})",
            t.dtype(),
            t.dtype()
        )
    })?;
    let shape = match t.shape() {
        [] => "()".to_string(),
        [n] => format!("({n},)"),
        s => format!(
            "({})",
            s.iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!("{{'descr': '{d}', 'fortran_order': False, 'shape': {shape}, }}");
    // magic(6) + version(2) + header length(2 or 4) + header + '\n', padded to 64 bytes.
    let (version, len_bytes) = if header.len() + 11 < 65535 {
        (1u8, 2)
    } else {
        (2u8, 4)
    };
    let prefix = 6 + 2 + len_bytes;
    let total = (prefix + header.len() + 1).div_ceil(64) * 64;
    while prefix + header.len() + 1 < total {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(total + t.len() * t.dtype().size());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[version, 0]);
    if len_bytes == 2 {
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&t.to_le_bytes());
    Ok(out)
}

/// Parses .npy bytes.
pub fn decode(b: &[u8]) -> Result<Tensor, String> {
    if b.len() < 10 || &b[..6] != MAGIC {
        return Err("not a .npy file (bad magic)".into());
    }
    let (major, minor) = (b[6], b[7]);
    let (hlen, start): (usize, usize) = match major {
        1 => (u16::from_le_bytes([b[8], b[9]]) as usize, 10),
        2 | 3 => {
            if b.len() < 12 {
                return Err("truncated header".into());
            }
            (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12)
        }
        _ => return Err(format!("unsupported .npy version {major}.{minor}")),
    };
    let end = start
        .checked_add(hlen)
        .filter(|&e| e <= b.len())
        .ok_or("truncated header")?;
    let header = std::str::from_utf8(&b[start..end]).map_err(|_| "header is not UTF-8")?;
    let h = parse_header(header)?;
    let (dtype, size, big) = parse_descr(&h.descr)?;
    let n = h
        .shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("shape is too large")?;
    let data = &b[end..];
    let need = n.checked_mul(size).ok_or("shape is too large")?;
    if data.len() != need {
        return Err(format!(
            "data has {} bytes, shape {:?} of {} needs {need}",
            data.len(),
            h.shape,
            h.descr
        ));
    }
    let swapped: Vec<u8>;
    let bytes: &[u8] = if big && size > 1 {
        let mut v = data.to_vec();
        for c in v.chunks_exact_mut(size) {
            c.reverse();
        }
        swapped = v;
        &swapped
    } else {
        data
    };
    if h.fortran && h.shape.len() > 1 {
        // Column-major: the data is the C-order array of the reversed shape; transpose it.
        let rev: Vec<usize> = h.shape.iter().rev().copied().collect();
        let t = Tensor::from_le_bytes(dtype, rev.clone(), bytes).map_err(|e| e.to_string())?;
        let rank = rev.len();
        let src_strides = kiln_ir::tensor::strides(&rev);
        // Output index (i0..ik) in shape h.shape reads source index (ik..i0).
        let mut idx = Vec::with_capacity(n);
        let mut pos = vec![0usize; rank];
        for _ in 0..n {
            let mut off = 0;
            for (a, &p) in pos.iter().enumerate() {
                off += p * src_strides[rank - 1 - a];
            }
            idx.push(off);
            for a in (0..rank).rev() {
                pos[a] += 1;
                if pos[a] < h.shape[a] {
                    break;
                }
                pos[a] = 0;
            }
        }
        return t.take(&idx, h.shape).map_err(|e| e.to_string());
    }
    Tensor::from_le_bytes(dtype, h.shape, bytes).map_err(|e| e.to_string())
}

struct Header {
    descr: String,
    fortran: bool,
    shape: Vec<usize>,
}

/// Parses the header dict: `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`.
fn parse_header(h: &str) -> Result<Header, String> {
    let bad = || format!("malformed header {:?}", h.trim());
    let s = h.trim();
    let s = s
        .strip_prefix('{')
        .and_then(|s| s.trim_end().strip_suffix('}'))
        .ok_or_else(bad)?;
    let mut descr = None;
    let mut fortran = None;
    let mut shape = None;
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        let (key, r) = parse_str(rest).ok_or_else(bad)?;
        let r = r
            .trim_start()
            .strip_prefix(':')
            .ok_or_else(bad)?
            .trim_start();
        rest = match key.as_str() {
            "descr" => {
                if r.starts_with('[') {
                    return Err("structured dtypes are not supported".into());
                }
                let (v, r) = parse_str(r).ok_or_else(bad)?;
                descr = Some(v);
                r
            }
            "fortran_order" => {
                if let Some(r) = r.strip_prefix("True") {
                    fortran = Some(true);
                    r
                } else if let Some(r) = r.strip_prefix("False") {
                    fortran = Some(false);
                    r
                } else {
                    return Err(bad());
                }
            }
            "shape" => {
                let r = r.strip_prefix('(').ok_or_else(bad)?;
                let close = r.find(')').ok_or_else(bad)?;
                let mut dims = Vec::new();
                for part in r[..close].split(',') {
                    let p = part.trim().trim_end_matches('L');
                    if p.is_empty() {
                        continue;
                    }
                    dims.push(p.parse::<usize>().map_err(|_| bad())?);
                }
                shape = Some(dims);
                &r[close + 1..]
            }
            _ => return Err(format!("unknown header key '{key}'")),
        };
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix(',') {
            rest = r.trim_start();
        } else if !rest.is_empty() {
            return Err(bad());
        }
    }
    Ok(Header {
        descr: descr.ok_or("header has no 'descr'")?,
        fortran: fortran.ok_or("header has no 'fortran_order'")?,
        shape: shape.ok_or("header has no 'shape'")?,
    })
}

/// A Python string literal in single or double quotes, and the rest.
fn parse_str(s: &str) -> Option<(String, &str)> {
    let q = s.chars().next()?;
    if q != '\'' && q != '"' {
        return None;
    }
    let end = s[1..].find(q)? + 1;
    Some((s[1..end].to_string(), &s[end + 1..]))
}

/// (dtype, element size, big-endian) of a numpy type string.
fn parse_descr(d: &str) -> Result<(DType, usize, bool), String> {
    let (order, code) = match d.chars().next() {
        Some(c @ ('<' | '>' | '|' | '=')) => (c, &d[1..]),
        _ => ('=', d),
    };
    let dtype = match code {
        "f2" | "e" => DType::F16,
        "f4" | "f" => DType::F32,
        "f8" | "d" => DType::F64,
        "i1" | "b" => DType::I8,
        "i2" | "h" => DType::I16,
        "i4" | "i" => DType::I32,
        "i8" | "q" | "l" => DType::I64,
        "u1" | "B" => DType::U8,
        "u2" | "H" => DType::U16,
        "u4" | "I" => DType::U32,
        "u8" | "Q" | "L" => DType::U64,
        "b1" | "?" => DType::Bool,
        "V2" => {
            return Err(format!(
                "dtype '{d}' (raw 2-byte values, e.g. bfloat16) is not supported: numpy has no bfloat16; save as float32"
            ))
        }
        _ => return Err(format!("unsupported dtype '{d}'")),
    };
    let big = order == '>';
    Ok((dtype, dtype.size(), big))
}

/// Formats a tensor type as `f32[1, 7, 256]`.
pub fn type_string(t: &Tensor) -> String {
    format!(
        "{}[{}]",
        t.dtype(),
        t.shape()
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::f16;
    use kiln_ir::Data;

    fn f16_vec(v: &[f32]) -> Data {
        Data::F16(v.iter().map(|&x| f16::from_f32(x)).collect())
    }

    fn header_bytes(version: u8, header: &str) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[version, 0]);
        if version == 1 {
            out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        } else {
            out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        }
        out.extend_from_slice(header.as_bytes());
        out
    }

    #[test]
    fn roundtrip_every_numpy_dtype() {
        let cases = [
            Tensor::from_f32s(vec![2, 3], vec![1.0, -2.5, 3.0, 4.0, 5.5, 6.0]).unwrap(),
            Tensor::from_f64(DType::F64, vec![2], &[1.5, -0.25]),
            Tensor::new(vec![3], f16_vec(&[1.0, 0.5, -2.0])).unwrap(),
            Tensor::from_i64(DType::I8, vec![2], &[-3, 4]),
            Tensor::from_i64(DType::I16, vec![2], &[-300, 4]),
            Tensor::from_i64(DType::I32, vec![1, 2], &[-70000, 4]),
            Tensor::from_i64(DType::I64, vec![], &[1 << 40]),
            Tensor::from_i64(DType::U8, vec![2], &[250, 4]),
            Tensor::from_i64(DType::U16, vec![2], &[65000, 4]),
            Tensor::from_i64(DType::U32, vec![2], &[4_000_000_000, 4]),
            Tensor::from_i64(DType::U64, vec![2], &[1 << 50, 4]),
            Tensor::from_bools(vec![3], vec![true, false, true]).unwrap(),
            Tensor::from_f32s(vec![0, 4], vec![]).unwrap(),
        ];
        for t in cases {
            let b = encode(&t).unwrap();
            assert_eq!(b.len() % 64, (t.len() * t.dtype().size()) % 64, "{t:?}");
            assert_eq!(decode(&b).unwrap(), t);
        }
    }

    #[test]
    fn header_is_what_numpy_writes() {
        let t = Tensor::from_f32s(vec![1, 7], vec![0.0; 7]).unwrap();
        let b = encode(&t).unwrap();
        let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
        let h = std::str::from_utf8(&b[10..10 + hlen]).unwrap();
        assert!(h.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 7), }"));
        assert!(h.ends_with('\n'));
        assert_eq!((10 + hlen) % 64, 0);
        let s = encode(&Tensor::scalar_i64(3)).unwrap();
        assert!(std::str::from_utf8(&s[10..])
            .unwrap()
            .contains("'shape': ()"));
        let v = encode(&Tensor::from_i64s(vec![2], vec![1, 2]).unwrap()).unwrap();
        assert!(std::str::from_utf8(&v[10..74])
            .unwrap()
            .contains("'shape': (2,)"));
    }

    #[test]
    fn big_endian_and_v2_v3_headers() {
        let mut b = header_bytes(
            2,
            "{'descr': '>i4', 'fortran_order': False, 'shape': (2,), }\n",
        );
        b.extend_from_slice(&1i32.to_be_bytes());
        b.extend_from_slice(&(-2i32).to_be_bytes());
        assert_eq!(
            decode(&b).unwrap(),
            Tensor::from_i64(DType::I32, vec![2], &[1, -2])
        );
        let mut b = header_bytes(
            3,
            "{\"descr\": \">f8\", \"fortran_order\": False, \"shape\": (1,)}",
        );
        b.extend_from_slice(&2.5f64.to_be_bytes());
        assert_eq!(
            decode(&b).unwrap(),
            Tensor::from_f64(DType::F64, vec![1], &[2.5])
        );
    }

    #[test]
    fn fortran_order_is_transposed() {
        // [[1, 2, 3], [4, 5, 6]] stored column-major: 1 4 2 5 3 6.
        let mut b = header_bytes(
            1,
            "{'descr': '<i8', 'fortran_order': True, 'shape': (2, 3), }\n",
        );
        for x in [1i64, 4, 2, 5, 3, 6] {
            b.extend_from_slice(&x.to_le_bytes());
        }
        assert_eq!(
            decode(&b).unwrap(),
            Tensor::from_i64s(vec![2, 3], vec![1, 2, 3, 4, 5, 6]).unwrap()
        );
    }

    #[test]
    fn errors_are_one_line() {
        assert_eq!(
            decode(b"hello world").unwrap_err(),
            "not a .npy file (bad magic)"
        );
        let b = header_bytes(
            1,
            "{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }\n",
        );
        assert_eq!(decode(&b).unwrap_err(), "unsupported dtype '<c8'");
        let b = header_bytes(
            1,
            "{'descr': '<V2', 'fortran_order': False, 'shape': (1,), }\n",
        );
        assert!(decode(&b).unwrap_err().contains("numpy has no bfloat16"));
        let mut b = header_bytes(
            1,
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n",
        );
        b.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(
            decode(&b).unwrap_err(),
            "data has 4 bytes, shape [2] of <f4 needs 8"
        );
        let bf = Tensor::from_f64(DType::BF16, vec![1], &[1.0]);
        assert!(encode(&bf).unwrap_err().contains("bf16"));
        let e = read(Path::new("/nonexistent/x.npy"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/nonexistent/x.npy: "), "{e}");
        assert!(!e.contains('\n'));
    }
}
