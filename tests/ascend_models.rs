//! Every model case compiled for the Ascend 910B2, in fp16 and in bf16, with its symbolic
//! dims fixed to the reference inputs' sizes, and run on kiln-runtime's device model: each
//! output is within 3e-2 of the reference, relative to the output's largest magnitude. The
//! max relative error of each output is printed.
//!
//! The MoE cases ([`MOE_CASES`]) run on the Ascend MoE lowering (MoeGatingTopK,
//! MoeInitRoutingV2, GroupedMatmul, MoeFinalizeRouting); their failures are marked as such.
//! Cases known to miss the tolerance are listed, with why, in [`EXPECTED_FAILURES`].

#[path = "support/ascend.rs"]
mod ascend;
#[path = "support/compile.rs"]
mod compile;

use std::time::Instant;

use kiln_runtime::ElemType;
use kiln_tests::{model_cases, ModelCase};

/// The profile the cases are compiled for.
const PROFILE: &str = "ascend910b2";

/// Largest error allowed, relative to each output's largest magnitude.
const TOLERANCE: f64 = 3e-2;

/// The cases with a fused `moe` op, which need the Ascend MoE kernels.
const MOE_CASES: &[&str] = &[
    "deepseek_v3",
    "deepseek_v4",
    "genai_gpt_oss.decode",
    "genai_gpt_oss.prefill",
    "mixtral",
    "qwen3_moe",
];

/// Cases known to miss the tolerance, with the reason: each is reported as XFAIL, and the
/// test fails if one of them starts to pass (so the list only shrinks).
const EXPECTED_FAILURES: &[(&str, ElemType, &str)] = &[(
    "mixtral",
    ElemType::BF16,
    "only token 11's logits are off (5e-2; the other tokens' <= 7e-3): its layer-0 router \
     logits for experts 2 and 3 are 3e-4 apart in the reference (-0.02492, -0.02520) and \
     come out of the bf16 residual stream as -0.02474, -0.02469, so the device picks expert \
     3 over 2; f16 passes. Needs the router's matmul in f32 (inputs and weights), not only \
     its output",
)];

/// Compiles and runs one case in `dtype`; its failures (one line each) go to `failures`.
fn check(case: &ModelCase, dtype: ElemType, failures: &mut Vec<String>) {
    let tag = format!("{} {dtype}", case.name);
    let moe = if MOE_CASES.contains(&case.name.as_str()) {
        " [MoE case]"
    } else {
        ""
    };
    let mut fail = |what: String| {
        eprintln!("FAIL {tag:<27} {what}{moe}");
        failures.push(format!("{tag}: {what}{moe}"));
    };
    let inputs = case.inputs();
    let dims = match kiln_compiler::driver::load_model(&case.model()) {
        Ok(g) => compile::symbol_sizes(&g, &inputs),
        Err(e) => return fail(format!("load: {e}")),
    };
    let start = Instant::now();
    let art = match ascend::compile(&case.model(), PROFILE, dtype, &dims) {
        Ok(a) => a,
        Err(e) => return fail(format!("compile: {e}")),
    };
    let compile_s = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let (got, costs) = match ascend::run(&art, &inputs) {
        Ok(x) => x,
        Err(e) => return fail(format!("run: {e}")),
    };
    let device_us: f64 = costs.iter().map(|c| c.time_s).sum::<f64>() * 1e6;
    eprintln!(
        "ran  {tag:<27} {} kernels, compiled in {compile_s:.1} s, simulated in {:.1} s, \
         priced {device_us:.1} us",
        art.launch.kernels.len(),
        start.elapsed().as_secs_f64()
    );
    for (name, want) in case.outputs() {
        let Some((_, got)) = got.iter().find(|(n, _)| *n == name) else {
            fail(format!("output {name}: not produced"));
            continue;
        };
        if want.shape() != got.shape() {
            fail(format!(
                "output {name}: shape {:?}, reference {:?}",
                got.shape(),
                want.shape()
            ));
            continue;
        }
        let err = ascend::max_relative_error(&want, got);
        if err <= TOLERANCE {
            eprintln!("ok   {tag:<27} {name:<18} max relative error {err:.2e}");
        } else {
            fail(format!(
                "output {name}: max relative error {err:.2e} > {TOLERANCE:e}"
            ));
        }
    }
}

fn every_case_matches(dtype: ElemType) {
    let cases = model_cases();
    let start = Instant::now();
    let (mut failures, mut xfails) = (Vec::new(), 0);
    for case in &cases {
        let expected = EXPECTED_FAILURES
            .iter()
            .find(|(n, d, _)| *n == case.name && *d == dtype);
        let mut found = Vec::new();
        check(case, dtype, &mut found);
        match (expected, found.is_empty()) {
            (Some((_, _, why)), true) => failures.push(format!(
                "{} {dtype}: passes but is listed in EXPECTED_FAILURES ({why}): remove it",
                case.name
            )),
            (Some((_, _, why)), false) => {
                xfails += 1;
                eprintln!("XFAIL {} {dtype}: {why}", case.name)
            }
            (None, _) => failures.extend(found),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures in {dtype}:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!(
        "{} model cases on the {PROFILE} in {dtype} match their references, {xfails} expected \
         to fail ({:.1} s)",
        cases.len() - xfails,
        start.elapsed().as_secs_f64()
    );
}

#[test]
fn every_model_on_ascend910b2_fp16_matches_its_reference() {
    every_case_matches(ElemType::F16);
}

#[test]
fn every_model_on_ascend910b2_bf16_matches_its_reference() {
    every_case_matches(ElemType::BF16);
}

/// deepseek_v3_bench (`${KILN_MODELS_EXTRA:-../models-extra}/deepseek_v3_bench`, made as
/// bench/deepseek_v3_bench.sh says) compiled for the 910B2 at seq 1, one decode step: prints
/// the estimated device time `kiln run --profile` gives, and checks the logits against the
/// reference's first position (causal: the first token sees only itself). Skipped, saying
/// so, when the model is absent: it is not part of ../shared.
#[test]
fn deepseek_v3_bench_decode_step_is_priced_on_ascend910b2() {
    let dir = std::env::var_os("KILN_MODELS_EXTRA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| kiln_tests::repo_root().join("../models-extra"))
        .join("deepseek_v3_bench");
    if !dir.join("model.onnx").is_file() {
        eprintln!(
            "SKIPPED: {} is absent (make it as bench/deepseek_v3_bench.sh says, or set \
             KILN_MODELS_EXTRA)",
            dir.join("model.onnx").display()
        );
        return;
    }
    let case = ModelCase {
        name: "deepseek_v3_bench".into(),
        dir,
        atol: 0.0,
        rtol: 0.0,
    };
    let ids = &case.inputs()["input_ids"];
    let first = ids.take(&[0], vec![1, 1]).expect("one token");
    let dims = [("seq".to_string(), 1)].into_iter().collect();
    let start = Instant::now();
    let art = ascend::compile(&case.model(), PROFILE, ElemType::F16, &dims)
        .unwrap_or_else(|e| panic!("compile: {e}"));
    let inputs = [("input_ids".to_string(), first)].into_iter().collect();
    let (got, costs) = ascend::run(&art, &inputs).unwrap_or_else(|e| panic!("run: {e}"));
    let report = kiln_runtime::ascend::report::profile(&art.launch, &costs);
    eprintln!(
        "deepseek_v3_bench, seq 1, f16 ({:.1} s to compile and simulate): {}",
        start.elapsed().as_secs_f64(),
        report.lines().next().unwrap_or_default()
    );
    let (_, want) = case
        .outputs()
        .into_iter()
        .find(|(n, _)| n == "logits")
        .expect("reference logits");
    let vocab = *want.shape().last().expect("logits have a vocabulary dim");
    let want = want
        .take(&(0..vocab).collect::<Vec<_>>(), vec![1, 1, vocab])
        .expect("the first position");
    let got = &got.iter().find(|(n, _)| n == "logits").expect("logits").1;
    let err = ascend::max_relative_error(&want, got);
    eprintln!("deepseek_v3_bench logits at seq 1: max relative error {err:.2e}");
    assert!(err <= TOLERANCE, "logits: max relative error {err:.2e}");
}
