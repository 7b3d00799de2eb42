//! The text IR round trip on every model case: ONNX -> canonicalize -> a.kir, then
//! a.kir -> canonicalize -> b.kir gives the same bytes, and a.kir runs to the same outputs
//! as the ONNX model.

use kiln_compiler::conformance::compare;
use kiln_compiler::driver::load_model;
use kiln_compiler::passes::manager::{PassContext, PassManager};
use kiln_compiler::weights_file::write_kir;
use kiln_tests::model_cases;

fn canonicalize(g: &mut kiln_ir::Graph) {
    let pm = PassManager::parse("canonicalize").unwrap_or_else(|e| panic!("{e}"));
    pm.run(g, &mut PassContext::new())
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn kir_round_trips_byte_identical_and_runs_like_the_onnx() {
    let cases = model_cases();
    let dir = std::env::temp_dir().join(format!("kiln-roundtrip-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut failures = Vec::new();
    for case in &cases {
        let (a, b) = (
            dir.join(format!("{}.a.kir", case.name)),
            dir.join(format!("{}.b.kir", case.name)),
        );
        let onnx = load_model(&case.model()).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let mut g = onnx.clone();
        canonicalize(&mut g);
        write_kir(&g, &a).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let mut g2 = load_model(&a).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        canonicalize(&mut g2);
        write_kir(&g2, &b).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let (ta, tb) = (
            std::fs::read(&a).unwrap_or_default(),
            std::fs::read(&b).unwrap_or_default(),
        );
        if ta != tb {
            failures.push(format!("{}: a.kir and b.kir differ", case.name));
        }
        let inputs = case.inputs();
        let from_onnx =
            kiln_ir::interp::run(&onnx, &inputs).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let from_kir = load_model(&a)
            .and_then(|g| Ok(kiln_ir::interp::run(&g, &inputs)?))
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        for ((name, x), (_, y)) in from_onnx.iter().zip(&from_kir) {
            if let Err(e) = compare(x, y, case.rtol, case.atol) {
                failures.push(format!("{} output {name}: .kir vs .onnx: {e}", case.name));
            }
        }
        eprintln!("ok   {} ({} bytes of IR)", case.name, ta.len());
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
