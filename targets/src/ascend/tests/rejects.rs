//! Corrupted launch lists: the device model refuses each with a one-line error naming the
//! kernel and the limit broken.

use kiln_runtime::ascend::descriptor::LaunchList;
use kiln_runtime::ascend::AscendModel;
use kiln_runtime::ElemType;

use crate::ascend::testing::{build, graph};
use crate::ascend::AscendArtifact;

fn compiled(text: &str) -> AscendArtifact {
    build(&graph(text), "ascend910b2", ElemType::F16, &[]).unwrap()
}

/// A 128x512 by 512x256 matmul (base blocks 128x256x64) followed by an Add.
fn matmul() -> AscendArtifact {
    compiled(
        "graph @t(%a: f32[128, 512], %b: f32[512, 256], %c: f32[256]) -> (y: f32[128, 256]) {
            %0 = MatMul(%a, %b) : f32[128, 256]
            %1 = Add(%0, %c) : f32[128, 256]
            return %1
        }",
    )
}

fn kernel(list: &LaunchList, name: &str) -> usize {
    list.kernels
        .iter()
        .position(|k| k.kernel_name == name)
        .unwrap()
}

/// The error loading and running `art` after `corrupt` gives (zeros as inputs).
fn error(mut art: AscendArtifact, corrupt: impl FnOnce(&mut LaunchList)) -> String {
    corrupt(&mut art.launch);
    let inputs: Vec<kiln_runtime::Tensor> = art
        .launch
        .inputs
        .iter()
        .map(|i| {
            let s: Vec<usize> = i.shape.iter().map(|&d| d as usize).collect();
            kiln_runtime::Tensor::zeros(i.dtype, &s)
        })
        .collect();
    match AscendModel::new(art.launch, &art.weights).and_then(|m| m.run(&inputs)) {
        Ok(_) => "no error".to_string(),
        Err(e) => e.to_string(),
    }
}

fn set(list: &mut LaunchList, kernel: usize, field: &str, value: i64) {
    let t = &mut list.kernels[kernel].tiling.0;
    t.iter_mut().find(|(n, _)| n == field).unwrap().1 = value;
}

#[test]
fn the_uncorrupted_list_runs() {
    assert_eq!(error(matmul(), |_| {}), "no error");
}

fn mm(l: &LaunchList) -> usize {
    kernel(l, "MatMulV3")
}

fn add(l: &LaunchList) -> usize {
    kernel(l, "Add")
}

/// One K step per L1 load, one L1 buffer each for A and B.
fn single_l1(l: &mut LaunchList, k: usize) {
    for f in ["stepKa", "depthA1", "stepKb", "depthB1"] {
        set(l, k, f, 1);
    }
}

#[test]
fn tiles_over_the_cube_buffers() {
    let e = error(matmul(), |l| {
        let k = mm(l);
        single_l1(l, k);
        set(l, k, "baseK", 256);
    });
    assert_eq!(e, "kernel 3 (MatMulV3, MatMul node): L0A overflow: tile `a1` of 65536 B at offset 65536 ends at 131072 B, past the 65536 B of L0A");
    let e = error(matmul(), |l| {
        let k = mm(l);
        single_l1(l, k);
        set(l, k, "baseK", 128);
    });
    assert_eq!(e, "kernel 3 (MatMulV3, MatMul node): L0B overflow: tile `b1` of 65536 B at offset 65536 ends at 131072 B, past the 65536 B of L0B");
    let e = error(matmul(), |l| set(l, mm(l), "dbL0C", 2));
    assert_eq!(e, "kernel 3 (MatMulV3, MatMul node): L0C overflow: tile `c1` of 131072 B at offset 131072 ends at 262144 B, past the 131072 B of L0C");
    let e = error(matmul(), |l| {
        let k = mm(l);
        set(l, k, "stepKa", 8);
        set(l, k, "depthA1", 24);
    });
    assert_eq!(e, "kernel 3 (MatMulV3, MatMul node): L1 overflow: tile `B1` of 131072 B at offset 524288 ends at 655360 B, past the 524288 B of L1");
    let e = error(matmul(), |l| set(l, mm(l), "baseM", 120));
    assert_eq!(
        e,
        "kernel 3 (MatMulV3, MatMul node): tiling baseM = 120 is not a multiple of the cube's 16"
    );
}

#[test]
fn tiles_over_the_unified_buffer() {
    let e = error(matmul(), |l| set(l, add(l), "tileLength", 32768));
    assert_eq!(e, "kernel 4 (Add, Add node): UB overflow: tile `in1.1` of 65536 B at offset 196608 ends at 262144 B, past the 196608 B of UB");
    let e = error(matmul(), |l| set(l, add(l), "blockLength", 64));
    assert_eq!(
        e,
        "kernel 4 (Add, Add node): 32 blocks of 64 elements do not cover the 32768 elements"
    );
}

#[test]
fn bad_descriptors() {
    let e = error(matmul(), |l| {
        let k = mm(l);
        l.kernels[k].inputs[0].as_mut().unwrap().offset += 2;
    });
    assert_eq!(e, "kernel 3 (MatMulV3, MatMul node): input at HBM offset 262146: misaligned: not a multiple of 32 B");
    let e = error(matmul(), |l| {
        let k = add(l);
        l.kernels[k].block_dim = 49;
    });
    assert_eq!(
        e,
        "kernel 4 (Add, Add node): blockDim 49 is not in 1..=48 (the ascend910b2 has 48 AIV cores)"
    );
    let e = error(matmul(), |l| {
        let k = mm(l);
        l.kernels[k].block_dim = 25;
    });
    assert_eq!(e, "kernel 3 (MatMulV3, MatMul node): blockDim 25 is not in 1..=24 (the ascend910b2 has 24 AIC cores)");
    let e = error(matmul(), |l| {
        let k = mm(l);
        l.kernels[k].op_para_size = 8;
    });
    assert_eq!(e, "kernel 3 (MatMulV3, MatMul node): opParaSize is 8 B but the tiling data (18 fields) is 144 B");
    let e = error(matmul(), |l| {
        let k = mm(l);
        l.kernels[k].kernel_name = "MatMulV9".into();
    });
    assert_eq!(
        e,
        "kernel 3 (MatMulV9, MatMul node): the device model has no kernel named MatMulV9"
    );
}

#[test]
fn overlapping_live_buffers() {
    let e = error(matmul(), |l| {
        let k = mm(l);
        let a = l.kernels[k].inputs[0].as_ref().unwrap().buffer as usize;
        let c = l.kernels[k].outputs[0].buffer as usize;
        l.hbm.buffers[c].offset = l.hbm.buffers[a].offset;
    });
    assert_eq!(e, "launch list: buffers `input \"a\" cast to f16` (131072 B at 262144, kernels 0..3) and `MatMul node#0` (65536 B at 262144, kernels 3..4) overlap while both are live");
}

/// An op no Ascend kernel implements is an error naming the op and its node: never a
/// silent fallback.
#[test]
fn an_op_without_a_kernel_is_an_error_naming_it() {
    let g = graph(
        "graph @t(%x: f32[4, 8]) -> (y: f32[4, 8]) {
            %a = constant {value = dense<i64[]>[1]} : i64[]
            %0 = Relu(%x) : f32[4, 8]
            %1 = CumSum(%0, %a) : f32[4, 8]
            return %1
        }",
    );
    let err = match build(&g, "ascend910b2", ElemType::F16, &[]) {
        Ok(_) => "compiled".to_string(),
        Err(e) => e.to_string(),
    };
    assert_eq!(err, "CumSum node: op CumSum has no Ascend kernel");
}

/// A softmax top-2 MoE of 4 experts over 8 tokens (H = 32, I = 64), gate and up fused.
fn moe() -> AscendArtifact {
    let w = |shape: &[usize], seed: u64| {
        let v: Vec<String> = crate::ascend::testing::floats(shape, seed)
            .to_f64()
            .iter()
            .map(|x| format!("{x}"))
            .collect();
        let d: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        format!("dense<f32[{}]>[{}]", d.join(", "), v.join(", "))
    };
    compiled(&format!(
        "graph @t(%x: f32[8, 32], %l: f32[8, 4]) -> (y: f32[8, 32]) {{
            %0 = constant {{value = {}}} : f32[4, 128, 32]
            %1 = constant {{value = {}}} : f32[4, 32, 64]
            %2 = moe(%x, %l, %0, _, %1) {{k = 2, swiglu_fusion = 2}} : f32[8, 32]
            return %2
        }}",
        w(&[4, 128, 32], 1),
        w(&[4, 32, 64], 2)
    ))
}

#[test]
fn moe_kernels_over_their_buffers() {
    assert_eq!(error(moe(), |_| {}), "no error");
    let e = error(moe(), |l| {
        let k = kernel(l, "GroupedMatmul");
        set(l, k, "baseM", 128);
        set(l, k, "baseN", 256);
        set(l, k, "dbL0C", 2);
    });
    assert_eq!(e, "kernel 4 (GroupedMatmul, moe node): L0C overflow: tile `c1` of 131072 B at offset 131072 ends at 262144 B, past the 131072 B of L0C");
    let e = error(moe(), |l| {
        let k = kernel(l, "GroupedMatmulSwiglu");
        l.kernels[k].workspace.as_mut().unwrap().bytes = 512;
    });
    assert_eq!(e, "kernel 3 (GroupedMatmulSwiglu, moe node): the workspace has 512 B, the blocks need 40960 B");
    let e = error(moe(), |l| {
        set(l, kernel(l, "MoeInitRoutingV2"), "tileRows", 2048)
    });
    assert_eq!(e, "kernel 2 (MoeInitRoutingV2, moe node): UB overflow: tile `rows.1` of 131072 B at offset 131200 ends at 262272 B, past the 196608 B of UB");
    let e = error(moe(), |l| set(l, kernel(l, "MoeGatingTopK"), "k", 3));
    assert_eq!(e, "kernel 1 (MoeGatingTopK, moe node): MoeGatingTopK takes f32 logits [8, 4] and gives f32 weights and i32 experts [8, 3]");
    let e = error(moe(), |l| set(l, kernel(l, "GroupedMatmul"), "experts", 5));
    assert_eq!(e, "kernel 4 (GroupedMatmul, moe node): a weight is f16 [4, 64, 32], the tiling says f16 [5, 64, 32]");
}

#[test]
fn add_rms_norm_tiles_over_the_unified_buffer() {
    let text =
        "graph @t(%a: f32[64, 1024], %b: f32[64, 1024], %g: f32[1024]) -> (y: f32[64, 1024]) {
        %0 = Add(%a, %b) : f32[64, 1024]
        %1 = rms_norm(%0, %g) : f32[64, 1024]
        return %1
    }";
    assert_eq!(error(compiled(text), |_| {}), "no error");
    let e = error(compiled(text), |l| {
        let k = kernel(l, "AddRmsNorm");
        set(l, k, "rowsPerCore", 64);
        set(l, k, "tileRows", 64);
    });
    assert_eq!(e, "kernel 3 (AddRmsNorm, Add node + rms_norm node): UB overflow: tile `x1.1` of 131072 B at offset 131072 ends at 262144 B, past the 196608 B of UB");
}
