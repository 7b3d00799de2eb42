//! `TfIdfVectorizer` (opset 9) for integer inputs.
//!
//! The n-gram pool `pool_int64s` is split by `ngram_counts`: segment `i` (from
//! `ngram_counts[i]` to the next start) holds the `(i+1)`-grams back to back. The n-grams are
//! numbered in pool order across all sizes, and `ngram_indexes[g]` is the output column of
//! n-gram `g`; the output has `max(ngram_indexes) + 1` columns per row. For each row and each
//! skip distance `s = 1 ..= max_skip_count + 1`, every `n`-gram `x[p], x[p+s], ...,
//! x[p+(n-1)s]` with `min_gram_length <= n <= max_gram_length` found in the pool is counted,
//! unigrams only once (at `s = 1`). `mode` turns counts into TF (the count), IDF (`weights[col]`
//! or 1 where the count is non-zero) or TFIDF (`weights[col] * count`, or the count).

use std::collections::HashMap;

use crate::attr::{Attrs, AttrsExt};
use crate::bail;
use crate::dim::Dim;
use crate::dtype::DType;
use crate::ops::{EvalCtx, InferCtx, OpResult};
use crate::tensor::Tensor;
use crate::types::ValueType;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Tf,
    Idf,
    TfIdf,
}

/// One trie node: the children by next token, and the pool n-gram ending here, if any.
#[derive(Default)]
struct Node {
    next: HashMap<i64, usize>,
    gram: Option<usize>,
}

/// The parsed attributes.
struct Config {
    mode: Mode,
    min_n: usize,
    max_n: usize,
    max_skip: usize,
    /// Output column of each pool n-gram.
    columns: Vec<usize>,
    width: usize,
    weights: Option<Vec<f64>>,
    /// A trie of the pool n-grams whose size is in `[min_n, max_n]`; node 0 is the root.
    trie: Vec<Node>,
}

fn required_int(attrs: &Attrs, name: &str) -> OpResult<i64> {
    match attrs.int(name)? {
        Some(v) => Ok(v),
        None => bail!("TfIdfVectorizer needs `{name}`"),
    }
}

fn config(attrs: &Attrs) -> OpResult<Config> {
    let mode = match attrs.str("mode")? {
        Some("TF") => Mode::Tf,
        Some("IDF") => Mode::Idf,
        Some("TFIDF") => Mode::TfIdf,
        Some(m) => bail!("TfIdfVectorizer: mode must be TF, IDF or TFIDF, got {m:?}"),
        None => bail!("TfIdfVectorizer needs `mode`"),
    };
    let min_n = required_int(attrs, "min_gram_length")?;
    let max_n = required_int(attrs, "max_gram_length")?;
    let max_skip = required_int(attrs, "max_skip_count")?;
    if min_n < 1 || max_n < min_n {
        bail!("TfIdfVectorizer: gram lengths must satisfy 1 <= min ({min_n}) <= max ({max_n})");
    }
    if max_skip < 0 {
        bail!("TfIdfVectorizer: max_skip_count must be >= 0, got {max_skip}");
    }
    if attrs.get("pool_strings").is_some() {
        bail!("TfIdfVectorizer: string pools (pool_strings) are not supported");
    }
    let pool = attrs.ints("pool_int64s")?.unwrap_or_default();
    let counts = attrs.ints("ngram_counts")?.unwrap_or_default();
    let indexes = attrs.ints("ngram_indexes")?.unwrap_or_default();
    let (min_n, max_n) = (min_n as usize, max_n as usize);

    let mut trie = vec![Node::default()];
    let mut gram = 0usize;
    for (i, &start) in counts.iter().enumerate() {
        let end = counts.get(i + 1).copied().unwrap_or(pool.len() as i64);
        if start < 0 || start > end || end > pool.len() as i64 {
            bail!(
                "TfIdfVectorizer: ngram_counts {counts:?} do not split a pool of {} items",
                pool.len()
            );
        }
        let n = i + 1;
        let seg = &pool[start as usize..end as usize];
        if seg.len() % n != 0 {
            bail!(
                "TfIdfVectorizer: the {n}-gram segment has {} items, not a multiple of {n}",
                seg.len()
            );
        }
        for g in seg.chunks(n) {
            if (min_n..=max_n).contains(&n) {
                let mut node = 0;
                for &tok in g {
                    node = match trie[node].next.get(&tok) {
                        Some(&c) => c,
                        None => {
                            trie.push(Node::default());
                            let c = trie.len() - 1;
                            trie[node].next.insert(tok, c);
                            c
                        }
                    };
                }
                trie[node].gram = Some(gram);
            }
            gram += 1;
        }
    }
    if indexes.len() != gram {
        bail!(
            "TfIdfVectorizer: {} ngram_indexes for {gram} pool n-grams",
            indexes.len()
        );
    }
    if let Some(&bad) = indexes.iter().find(|&&c| c < 0) {
        bail!("TfIdfVectorizer: negative ngram index {bad}");
    }
    let columns: Vec<usize> = indexes.iter().map(|&c| c as usize).collect();
    let width = columns.iter().max().map_or(0, |&m| m + 1);
    if width == 0 {
        bail!("TfIdfVectorizer: ngram_indexes is empty");
    }
    let weights = attrs
        .floats("weights")?
        .map(|w| w.iter().map(|&x| x as f64).collect::<Vec<f64>>());
    if let Some(w) = &weights {
        if w.len() < width {
            bail!(
                "TfIdfVectorizer: {} weights for {width} output columns",
                w.len()
            );
        }
    }
    Ok(Config {
        mode,
        min_n,
        max_n,
        max_skip: max_skip as usize,
        columns,
        width,
        weights,
        trie,
    })
}

fn check_input(x: &ValueType) -> OpResult<()> {
    if !matches!(x.dtype, DType::I32 | DType::I64) {
        bail!("TfIdfVectorizer takes int32 or int64 tokens (strings are not supported), got {x}");
    }
    if x.rank() > 2 {
        bail!("TfIdfVectorizer takes [C] or [B, C] tokens, got {x}");
    }
    Ok(())
}

pub fn infer_tfidf(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = ctx.input(0)?;
    check_input(x)?;
    let cfg = config(ctx.attrs)?;
    let mut shape = if x.rank() == 2 {
        vec![x.shape[0].clone()]
    } else {
        vec![]
    };
    shape.push(Dim::from(cfg.width));
    Ok(vec![ValueType::new(DType::F32, shape)])
}

/// Adds the pool n-gram counts of `row` to `freq` (one row of output columns).
fn count_row(cfg: &Config, row: &[i64], freq: &mut [f64]) {
    for skip in 1..=cfg.max_skip + 1 {
        // Unigrams do not depend on the skip distance: count them at skip 1 only.
        let min_n = if skip == 1 {
            cfg.min_n
        } else {
            cfg.min_n.max(2)
        };
        if min_n > cfg.max_n {
            break;
        }
        for start in 0..row.len() {
            let mut node = 0;
            let mut pos = start;
            let mut n = 1;
            while n <= cfg.max_n && pos < row.len() {
                match cfg.trie[node].next.get(&row[pos]) {
                    Some(&c) => node = c,
                    None => break,
                }
                if n >= min_n {
                    if let Some(g) = cfg.trie[node].gram {
                        freq[cfg.columns[g]] += 1.0;
                    }
                }
                n += 1;
                pos += skip;
            }
        }
    }
}

pub fn eval_tfidf(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = ctx.input(0)?;
    check_input(&ValueType::of(x.dtype(), x.shape()))?;
    let cfg = config(ctx.attrs)?;
    let (rows, cols) = match x.shape() {
        [] => (1, 1),
        [c] => (1, *c),
        [b, c] => (*b, *c),
        s => bail!("TfIdfVectorizer takes [C] or [B, C] tokens, got shape {s:?}"),
    };
    let tokens = x.to_i64();
    let w = cfg.width;
    let mut y = vec![0.0; rows * w];
    for r in 0..rows {
        let out = &mut y[r * w..(r + 1) * w];
        count_row(&cfg, &tokens[r * cols..(r + 1) * cols], out);
        for (col, v) in out.iter_mut().enumerate() {
            let weight = cfg.weights.as_ref().map(|ws| ws[col]);
            *v = match (cfg.mode, weight) {
                (Mode::Tf, _) | (Mode::TfIdf, None) => *v,
                (Mode::TfIdf, Some(wt)) => wt * *v,
                (Mode::Idf, wt) if *v > 0.0 => wt.unwrap_or(1.0),
                (Mode::Idf, _) => 0.0,
            };
        }
    }
    let shape = if x.rank() == 2 {
        vec![rows, w]
    } else {
        vec![w]
    };
    Ok(vec![Tensor::from_f64(DType::F32, shape, &y)])
}

#[cfg(test)]
mod tests {
    use crate::attr::{Attr, Attrs};
    use crate::dtype::DType;
    use crate::ops::misc::testutil::{attrs, infer_types, run_op, s, ty};
    use crate::tensor::Tensor;

    const OP: &str = "TfIdfVectorizer";

    /// The pool of ONNX's examples: unigrams 2 3 5 4, bigrams (5 6) (7 8) (6 7).
    fn cfg(mode: &str, min: i64, max: i64, skip: i64) -> Attrs {
        attrs(&[
            ("mode", s(mode)),
            ("min_gram_length", Attr::Int(min)),
            ("max_gram_length", Attr::Int(max)),
            ("max_skip_count", Attr::Int(skip)),
            ("ngram_counts", Attr::Ints(vec![0, 4])),
            ("ngram_indexes", Attr::Ints((0..7).collect())),
            (
                "pool_int64s",
                Attr::Ints(vec![2, 3, 5, 4, 5, 6, 7, 8, 6, 7]),
            ),
        ])
    }

    fn tokens() -> Option<Tensor> {
        let v = vec![1, 1, 3, 3, 3, 7, 8, 6, 7, 5, 6, 8];
        Some(Tensor::new(vec![12], crate::tensor::Data::I32(v)).unwrap())
    }

    fn run(a: &Attrs, x: Option<Tensor>) -> Tensor {
        run_op(OP, a, vec![x], 1).unwrap().remove(0)
    }

    #[test]
    fn bigrams_without_skips() {
        let y = run(&cfg("TF", 2, 2, 0), tokens());
        assert_eq!(y.dtype(), DType::F32);
        assert_eq!(y.to_f64(), vec![0., 0., 0., 0., 1., 1., 1.]);
    }

    #[test]
    fn skips_count_every_distance_but_unigrams_once() {
        // (7 8) occurs at distances 1 (positions 5, 6), 6 (5, 11) and 3 (8, 11); the unigram
        // 3 is counted three times, not once per skip distance.
        let y = run(&cfg("TF", 2, 2, 5), tokens());
        assert_eq!(y.to_f64(), vec![0., 0., 0., 0., 1., 3., 1.]);
        let y = run(&cfg("TF", 1, 2, 5), tokens());
        assert_eq!(y.to_f64(), vec![0., 3., 1., 0., 1., 3., 1.]);
    }

    #[test]
    fn batched_rows_are_independent() {
        let v = vec![1, 1, 3, 3, 3, 7, 8, 6, 7, 5, 6, 8];
        let x = Some(Tensor::from_i64s(vec![2, 6], v).unwrap());
        let y = run(&cfg("TF", 1, 2, 5), x);
        assert_eq!(y.shape(), &[2, 7]);
        assert_eq!(
            y.to_f64(),
            vec![0., 3., 0., 0., 0., 0., 0., 0., 0., 1., 0., 1., 1., 1.]
        );
    }

    #[test]
    fn idf_and_tfidf_weights() {
        let mut a = cfg("IDF", 1, 2, 5);
        a.insert(
            "weights".into(),
            Attr::Floats((1..=7).map(|i| i as f32).collect()),
        );
        assert_eq!(run(&a, tokens()).to_f64(), vec![0., 2., 3., 0., 5., 6., 7.]);
        a.insert("mode".into(), s("TFIDF"));
        assert_eq!(
            run(&a, tokens()).to_f64(),
            vec![0., 6., 3., 0., 5., 18., 7.]
        );
        let y = run(&cfg("IDF", 1, 2, 5), tokens());
        assert_eq!(y.to_f64(), vec![0., 1., 1., 0., 1., 1., 1.]);
    }

    #[test]
    fn empty_level_and_column_mapping() {
        // No unigrams; bigrams (5 6) (7 8) (6 7) land in columns 2, 0, 1.
        let a = attrs(&[
            ("mode", s("TF")),
            ("min_gram_length", Attr::Int(2)),
            ("max_gram_length", Attr::Int(2)),
            ("max_skip_count", Attr::Int(0)),
            ("ngram_counts", Attr::Ints(vec![0, 0])),
            ("ngram_indexes", Attr::Ints(vec![2, 0, 1])),
            ("pool_int64s", Attr::Ints(vec![5, 6, 7, 8, 6, 7])),
        ]);
        assert_eq!(run(&a, tokens()).to_f64(), vec![1., 1., 1.]);
    }

    #[test]
    fn bad_attributes_and_inputs() {
        let mut a = cfg("TF", 1, 2, 0);
        a.insert("ngram_indexes".into(), Attr::Ints(vec![0, 1, 2]));
        assert!(run_op(OP, &a, vec![tokens()], 1).is_err());
        let a = cfg("BM25", 1, 2, 0);
        assert!(run_op(OP, &a, vec![tokens()], 1).is_err());
        let x = Some(Tensor::from_f32s(vec![2], vec![1.0, 2.0]).unwrap());
        assert!(run_op(OP, &cfg("TF", 1, 2, 0), vec![x], 1).is_err());
    }

    #[test]
    fn infers_batch_dim() {
        let out = infer_types(
            OP,
            &cfg("TF", 1, 2, 0),
            vec![ty(DType::I64, &["b", "c"])],
            vec![],
            1,
        )
        .unwrap();
        assert_eq!(out[0], ty(DType::F32, &["b", "7"]).unwrap());
    }
}
