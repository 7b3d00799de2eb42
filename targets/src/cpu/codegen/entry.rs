//! The entry function: `extern "C" fn(frame: *const u64)`. It reads the symbol values from
//! the frame, then walks the schedule: per step it evaluates the arguments (buffer
//! addresses, symbolic sizes) into one argument array on its stack and calls the step's
//! kernel (a direct call inside the code blob) or helper (through the helper table).
//! After each step it calls the run context's step hook when one is set (profiled runs:
//! one load at entry, then a test and a branch per step otherwise).

use std::collections::HashMap;

use cranelift_codegen::ir::{
    types, AbiParam, ExtFuncData, ExternalName, Function, InstBuilder, Signature, StackSlotData,
    StackSlotKind, UserExternalName, UserFuncName, Value,
};
use cranelift_codegen::isa::{CallConv, OwnedTargetIsa};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use kiln_runtime::cpu::helpers::{self, HelperSig, RunContext};
use kiln_runtime::model::frame::{self, FrameLayout};

use crate::cpu::codegen::dims::{DimEmitter, SymbolTable};
use crate::cpu::codegen::kernel::{helper_signature, kernel_signature, mem};
use crate::cpu::lower::{Arg, BufKind, Callee, Program};
use crate::cpu::memory::MemoryPlan;
use crate::error::TargetError;

/// Builds the entry function. Kernel `k` of the program must be blob function `k`.
pub fn build_entry(
    isa: &OwnedTargetIsa,
    program: &Program,
    plan: &MemoryPlan,
    symbols: &SymbolTable,
    layout: FrameLayout,
) -> Result<Function, TargetError> {
    let mut sig = Signature::new(CallConv::SystemV);
    sig.params.push(AbiParam::new(types::I64));
    let mut func = Function::with_name_signature(UserFuncName::testcase("entry"), sig);
    let kernel_sig = func.import_signature(kernel_signature());
    let kernel_refs: Vec<_> = (0..program.kernels.len())
        .map(|k| {
            let name = func.declare_imported_user_function(UserExternalName::new(0, k as u32));
            func.import_function(ExtFuncData {
                name: ExternalName::user(name),
                signature: kernel_sig,
                colocated: true,
                patchable: false,
            })
        })
        .collect();
    let max_args = program
        .steps
        .iter()
        .map(|s| s.args.len())
        .max()
        .unwrap_or(0)
        .max(1);
    let mut fctx = FunctionBuilderContext::new();
    let mut b = FunctionBuilder::new(&mut func, &mut fctx);
    let slot = b.create_sized_stack_slot(StackSlotData::new(
        StackSlotKind::ExplicitSlot,
        (8 * max_args) as u32,
        3,
    ));
    let block = b.create_block();
    b.append_block_params_for_function_params(block);
    b.switch_to_block(block);
    let frame_ptr = b.block_params(block)[0];
    let slot_load = |b: &mut FunctionBuilder, i: usize| {
        b.ins().load(types::I64, mem(), frame_ptr, (8 * i) as i32)
    };
    let sym_values: Vec<Value> = (0..layout.symbols)
        .map(|i| slot_load(&mut b, layout.symbol(i)))
        .collect();
    let mut dims = DimEmitter::new(sym_values);
    let mut bases: HashMap<usize, Value> = HashMap::new();
    let arena = slot_load(&mut b, frame::ARENA);
    let weights = slot_load(&mut b, frame::WEIGHTS);
    let table = slot_load(&mut b, frame::HELPER_TABLE);
    let context = slot_load(&mut b, frame::RUN_CONTEXT);
    let args_ptr = b.ins().stack_addr(types::I64, slot, 0);
    let hook = b
        .ins()
        .load(types::I64, mem(), context, RunContext::STEP_HOOK_OFFSET);
    let hook_sig = {
        let mut sig = Signature::new(CallConv::SystemV);
        sig.params.push(AbiParam::new(types::I64));
        sig.params.push(AbiParam::new(types::I64));
        b.import_signature(sig)
    };
    for (s, step) in program.steps.iter().enumerate() {
        for (i, arg) in step.args.iter().enumerate() {
            let v = match arg {
                Arg::Bits(bits) => b.ins().iconst(types::I64, *bits as i64),
                Arg::Int(d) => {
                    let e = symbols.expr(d)?;
                    dims.emit(&mut b, &e)
                }
                Arg::Ptr { buf, offset } => {
                    let base = match bases.get(buf) {
                        Some(&v) => v,
                        None => {
                            let v = match program.buffers[*buf].kind {
                                BufKind::Input(k) => slot_load(&mut b, layout.input(k)),
                                BufKind::Output(k) => slot_load(&mut b, layout.output(k)),
                                BufKind::Weight(off) => b.ins().iadd_imm_s(weights, off as i64),
                                BufKind::Arena => {
                                    let p = plan.placements[*buf].as_ref().ok_or_else(|| {
                                        TargetError::Lower(format!(
                                            "step {s} uses buffer `{}`, which has no place",
                                            program.buffers[*buf].name
                                        ))
                                    })?;
                                    b.ins().iadd_imm_s(arena, p.offset as i64)
                                }
                            };
                            bases.insert(*buf, v);
                            v
                        }
                    };
                    match offset.as_const() {
                        Some(0) => base,
                        _ => {
                            let e = symbols.expr(offset)?;
                            let o = dims.emit(&mut b, &e);
                            b.ins().iadd(base, o)
                        }
                    }
                }
            };
            b.ins().store(mem(), v, args_ptr, (8 * i) as i32);
        }
        match step.callee {
            Callee::Kernel(k) => {
                b.ins().call(kernel_refs[k], &[frame_ptr, args_ptr]);
            }
            Callee::Helper(h) => {
                let name = &program.helpers[h];
                let helper = helpers::find(name)
                    .ok_or_else(|| TargetError::Lower(format!("no runtime helper `{name}`")))?;
                if helper.sig() != HelperSig::Call {
                    return Err(TargetError::Lower(format!(
                        "helper `{name}` is scalar math, not a step"
                    )));
                }
                let f = b.ins().load(types::I64, mem(), table, (8 * h) as i32);
                let sigref = b.import_signature(helper_signature(HelperSig::Call));
                b.ins().call_indirect(sigref, f, &[context, args_ptr]);
            }
        }
        let (call_hook, next) = (b.create_block(), b.create_block());
        b.set_cold_block(call_hook);
        b.ins().brif(hook, call_hook, &[], next, &[]);
        b.switch_to_block(call_hook);
        let step_no = b.ins().iconst(types::I64, s as i64);
        b.ins().call_indirect(hook_sig, hook, &[context, step_no]);
        b.ins().jump(next, &[]);
        b.switch_to_block(next);
    }
    b.ins().return_(&[]);
    b.seal_all_blocks();
    b.finalize(isa.frontend_config());
    Ok(func)
}

#[cfg(test)]
mod tests {
    use kiln_runtime::{ElemType, Tensor as RtTensor};

    use crate::cpu::codegen::isa::CpuFeatures;
    use crate::cpu::testing::{floats, graph, load};

    #[test]
    fn profiled_runs_time_every_step_and_compute_the_same() {
        let g = graph(
            "graph @t(%x: f32[4, 8]) -> (y: f32[8, 4], z: f32[4, 8]) {
               %0 = Transpose(%x) {perm = [1, 0]} : f32[8, 4]
               %1 = Exp(%x) : f32[4, 8]
               %2 = Mul(%1, %x) : f32[4, 8]
               return %0, %2
             }",
        );
        let model = load(&g, CpuFeatures::host()).unwrap();
        let x = floats(&[4, 8], 3);
        let x = RtTensor::from_bytes(ElemType::F32, &[4, 8], &x.to_le_bytes()).unwrap();
        let plain = model.run(std::slice::from_ref(&x)).unwrap();
        let (profiled, times) = model.run_profiled(std::slice::from_ref(&x)).unwrap();
        assert_eq!(times.len(), model.manifest().steps.len());
        assert!(times.len() >= 2, "{:?}", model.manifest().steps);
        for (a, b) in plain.iter().zip(&profiled) {
            assert_eq!(a.bytes(), b.bytes());
        }
    }
}
