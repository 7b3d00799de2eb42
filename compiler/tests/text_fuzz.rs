//! Malformed IR text from a real model: edits of the printed example model must parse or
//! fail with an error, never panic (op shape rules see the odd inputs too). Set
//! `KILN_FUZZ_MODEL` to a .onnx or .kir to edit another model's text.

use kiln_ir::text::{parse_with_weights, print};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn edited_model_text_never_panics() {
    let model =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/tiny_block/model.onnx");
    let model = std::env::var_os("KILN_FUZZ_MODEL")
        .map(std::path::PathBuf::from)
        .unwrap_or(model);
    let g = kiln_compiler::driver::load_model(&model).unwrap();
    let text = print(&g);
    let lines: Vec<&str> = text.lines().collect();
    let tokens = [
        "0",
        "1",
        "-1",
        "2",
        "64",
        "seq",
        "%0",
        "%3",
        "_",
        "f32",
        "i64",
        "[]",
        "[1]",
        ",",
        "dims<[seq]>",
        "1.5",
        "\"x\"",
    ];
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut parsed = 0;
    for _ in 0..4000 {
        let mut ls: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
        let i = 1 + rng.below(ls.len() - 2);
        match rng.below(4) {
            // Swap two statements (uses before definitions, reordered graphs).
            0 => {
                let j = 1 + rng.below(ls.len() - 2);
                ls.swap(i, j);
            }
            // Drop a statement.
            1 => {
                ls.remove(i);
            }
            // Replace a number or value in a statement by another token.
            _ => {
                let words: Vec<(usize, &str)> = ls[i]
                    .match_indices(|c: char| c.is_ascii_digit() || c == '%')
                    .collect();
                if let Some(&(at, _)) = words.get(rng.below(words.len().max(1))) {
                    let end = ls[i][at..]
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '%' || c == '-'))
                        .map_or(ls[i].len(), |e| at + e);
                    let tok = tokens[rng.below(tokens.len())];
                    ls[i].replace_range(at..end.max(at + 1), tok);
                }
            }
        }
        let edited = ls.join("\n");
        if parse_with_weights(&edited, g.weights.clone()).is_ok() {
            parsed += 1;
        }
    }
    assert!(parsed < 4000);
}
