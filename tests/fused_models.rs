//! Fusion on the shared model cases: after the default pipeline each case has the attention
//! and moe regions its architecture has (one attention per layer, one moe per sparse layer),
//! no Softmax or TopK outside them, and the fused graph still matches the reference outputs
//! on the reference interpreter.

use std::collections::BTreeMap;

use kiln_compiler::backend::DEFAULT_PIPELINE;
use kiln_compiler::conformance::compare;
use kiln_compiler::driver::load_model;
use kiln_compiler::passes::fuse::report::FusionReport;
use kiln_compiler::passes::{PassContext, PassManager};
use kiln_tests::model_cases;

/// Per case: attention regions, moe regions, of which hash-routed, and the Softmax and TopK
/// nodes that belong to no region (DeepSeek-V4's compressor gates and lightning indexer).
struct Expected {
    attention: usize,
    moe: usize,
    hash_moe: usize,
    softmax: usize,
    topk: usize,
}

fn expected(case: &str) -> Option<Expected> {
    let (attention, moe, hash_moe, softmax, topk) = match case {
        "deepseek_v3" => (2, 1, 0, 0, 0),
        "deepseek_v4" => (4, 4, 3, 10, 1),
        "mixtral" | "qwen3_moe" => (2, 2, 0, 0, 0),
        "llama" | "genai_llama.prefill" | "genai_llama.decode" => (2, 0, 0, 0, 0),
        "genai_gpt_oss.prefill" | "genai_gpt_oss.decode" => (2, 2, 0, 0, 0),
        "minilm" => (6, 0, 0, 0, 0),
        _ => return None,
    };
    Some(Expected {
        attention,
        moe,
        hash_moe,
        softmax,
        topk,
    })
}

#[test]
fn every_model_fuses_its_attention_and_moe_and_still_matches_its_reference() {
    let cases = model_cases();
    let mut failures = Vec::new();
    for case in &cases {
        let Some(want) = expected(&case.name) else {
            failures.push(format!(
                "{}: a case this test has no expected fusion for (add it to `expected`)",
                case.name
            ));
            continue;
        };
        let mut g = load_model(&case.model()).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let manager = PassManager::parse(DEFAULT_PIPELINE).expect("the default pipeline parses");
        let mut ctx = PassContext::new();
        manager
            .run(&mut g, &mut ctx)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let report = FusionReport::new(&ctx, &g, &manager.names());
        let count = |op: &str| report.ops.get(op).copied().unwrap_or(0);
        let hash_moe = report.rules.get("fuse-moe").map_or(0, |r| {
            r.regions
                .iter()
                .filter(|region| region.applied && region.form.contains("hash"))
                .count()
        });
        let got = BTreeMap::from([
            ("attention", (count("attention"), want.attention)),
            ("moe", (count("moe"), want.moe)),
            ("hash-routed moe", (hash_moe, want.hash_moe)),
            ("Softmax", (count("Softmax"), want.softmax)),
            ("TopK", (count("TopK"), want.topk)),
        ]);
        eprintln!(
            "{:<22} attention {} moe {} (hash {}) Softmax {} TopK {}",
            case.name,
            count("attention"),
            count("moe"),
            hash_moe,
            count("Softmax"),
            count("TopK")
        );
        for (what, (n, expected)) in got {
            if n != expected {
                failures.push(format!("{}: {n} {what}, expected {expected}", case.name));
            }
        }

        let outputs = match kiln_ir::interp::run(&g, &case.inputs()) {
            Ok(o) => o,
            Err(e) => {
                failures.push(format!("{}: the fused graph fails to run: {e}", case.name));
                continue;
            }
        };
        for (name, reference) in case.outputs() {
            match outputs.iter().find(|(n, _)| *n == name) {
                None => failures.push(format!("{} output {name}: not produced", case.name)),
                Some((_, got)) => {
                    if let Err(e) = compare(&reference, got, case.rtol, case.atol) {
                        failures.push(format!("{} output {name} fused: {e}", case.name));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!(
        "{} model cases fuse as expected and match their references fused",
        cases.len()
    );
}
