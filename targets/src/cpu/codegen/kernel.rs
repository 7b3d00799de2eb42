//! `KernelBuilder`: the scaffolding every generated kernel shares. A kernel is
//! `extern "C" fn(frame: *const u64, args: *const u64)`; it reads its arguments from
//! `args` (pointers and integers the entry function evaluated) and may call runtime helpers
//! through the helper table in `frame`.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{
    types, AbiParam, Block, Function, InstBuilder, MemFlagsData, Signature, Type, UserFuncName,
    Value,
};
use cranelift_codegen::isa::{CallConv, OwnedTargetIsa};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
use kiln_runtime::cpu::helpers::HelperSig;
use kiln_runtime::model::frame;

use crate::error::TargetError;

/// The signature of kernels: `(frame, args)`.
pub fn kernel_signature() -> Signature {
    let mut sig = Signature::new(CallConv::SystemV);
    sig.params.push(AbiParam::new(types::I64));
    sig.params.push(AbiParam::new(types::I64));
    sig
}

/// The signature of a runtime helper.
pub fn helper_signature(sig: HelperSig) -> Signature {
    let mut s = Signature::new(CallConv::SystemV);
    match sig {
        HelperSig::Call => {
            s.params.push(AbiParam::new(types::I64));
            s.params.push(AbiParam::new(types::I64));
        }
        HelperSig::F64ToF64 => {
            s.params.push(AbiParam::new(types::F64));
            s.returns.push(AbiParam::new(types::F64));
        }
        HelperSig::F64F64ToF64 => {
            s.params.push(AbiParam::new(types::F64));
            s.params.push(AbiParam::new(types::F64));
            s.returns.push(AbiParam::new(types::F64));
        }
    }
    s
}

/// Flags of every load and store kernels make: the lowering guarantees the addresses are
/// valid, so no access traps; alignment is not assumed.
pub fn mem() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

pub struct KernelBuilder<'a> {
    pub b: FunctionBuilder<'a>,
    /// The frame pointer parameter.
    pub frame: Value,
    /// The argument array parameter.
    pub args: Value,
}

impl<'a> KernelBuilder<'a> {
    /// Builds a kernel function: `body` emits the code after the entry block, the builder
    /// adds the return.
    pub fn build(
        isa: &OwnedTargetIsa,
        name: &str,
        body: impl FnOnce(&mut KernelBuilder) -> Result<(), TargetError>,
    ) -> Result<Function, TargetError> {
        let mut func =
            Function::with_name_signature(UserFuncName::testcase(name), kernel_signature());
        let mut fctx = FunctionBuilderContext::new();
        {
            let mut b = FunctionBuilder::new(&mut func, &mut fctx);
            let entry = b.create_block();
            b.append_block_params_for_function_params(entry);
            b.switch_to_block(entry);
            let (frame, args) = (b.block_params(entry)[0], b.block_params(entry)[1]);
            let mut kb = KernelBuilder { b, frame, args };
            body(&mut kb)?;
            kb.b.ins().return_(&[]);
            kb.b.seal_all_blocks();
            kb.b.finalize(isa.frontend_config());
        }
        Ok(func)
    }

    /// Argument slot `i` (an i64: a size, a stride or a pointer).
    pub fn arg(&mut self, i: usize) -> Value {
        self.b
            .ins()
            .load(types::I64, mem(), self.args, (8 * i) as i32)
    }

    pub fn iconst(&mut self, v: i64) -> Value {
        self.b.ins().iconst(types::I64, v)
    }

    /// A mutable variable of type `ty`, initialised to `init`.
    pub fn var(&mut self, ty: Type, init: Value) -> Variable {
        let v = self.b.declare_var(ty);
        self.b.def_var(v, init);
        v
    }

    /// `for i in start..end { body(i) }` with step `step` (> 0).
    pub fn for_range(
        &mut self,
        start: Value,
        end: Value,
        step: i64,
        body: impl FnOnce(&mut Self, Value) -> Result<(), TargetError>,
    ) -> Result<(), TargetError> {
        let (head, inner, exit) = (
            self.b.create_block(),
            self.b.create_block(),
            self.b.create_block(),
        );
        self.b.append_block_param(head, types::I64);
        self.b.ins().jump(head, &[start.into()]);
        self.b.switch_to_block(head);
        let i = self.b.block_params(head)[0];
        let more = self.b.ins().icmp(IntCC::SignedLessThan, i, end);
        self.b.ins().brif(more, inner, &[], exit, &[]);
        self.b.switch_to_block(inner);
        body(self, i)?;
        let next = self.b.ins().iadd_imm_s(i, step);
        self.b.ins().jump(head, &[next.into()]);
        self.b.switch_to_block(exit);
        Ok(())
    }

    /// `for i in (start..end).step_by(step)` while `i + step <= end`; returns the first `i`
    /// not visited (where a remainder loop starts).
    pub fn for_chunks(
        &mut self,
        start: Value,
        end: Value,
        step: i64,
        body: impl FnOnce(&mut Self, Value) -> Result<(), TargetError>,
    ) -> Result<Value, TargetError> {
        let (head, inner, exit) = (
            self.b.create_block(),
            self.b.create_block(),
            self.b.create_block(),
        );
        self.b.append_block_param(head, types::I64);
        self.b.append_block_param(exit, types::I64);
        self.b.ins().jump(head, &[start.into()]);
        self.b.switch_to_block(head);
        let i = self.b.block_params(head)[0];
        let next = self.b.ins().iadd_imm_s(i, step);
        let fits = self.b.ins().icmp(IntCC::SignedLessThanOrEqual, next, end);
        self.b.ins().brif(fits, inner, &[], exit, &[i.into()]);
        self.b.switch_to_block(inner);
        body(self, i)?;
        self.b.ins().jump(head, &[next.into()]);
        self.b.switch_to_block(exit);
        Ok(self.b.block_params(exit)[0])
    }

    /// `if cond { then() }`.
    pub fn if_then(
        &mut self,
        cond: Value,
        then: impl FnOnce(&mut Self) -> Result<(), TargetError>,
    ) -> Result<(), TargetError> {
        let (yes, done): (Block, Block) = (self.b.create_block(), self.b.create_block());
        self.b.ins().brif(cond, yes, &[], done, &[]);
        self.b.switch_to_block(yes);
        then(self)?;
        self.b.ins().jump(done, &[]);
        self.b.switch_to_block(done);
        Ok(())
    }

    /// `base + index * scale` (an address).
    pub fn addr(&mut self, base: Value, index: Value, scale: i64) -> Value {
        let off = if scale == 1 {
            index
        } else if scale > 0 && (scale as u64).is_power_of_two() {
            self.b
                .ins()
                .ishl_imm_u(index, i64::from(scale.trailing_zeros()))
        } else {
            self.b.ins().imul_imm_s(index, scale)
        };
        self.b.ins().iadd(base, off)
    }

    /// Calls runtime helper number `index` of the helper table.
    pub fn call_helper(&mut self, index: usize, sig: HelperSig, args: &[Value]) -> Option<Value> {
        let table = self.b.ins().load(
            types::I64,
            mem(),
            self.frame,
            (8 * frame::HELPER_TABLE) as i32,
        );
        let f = self
            .b
            .ins()
            .load(types::I64, mem(), table, (8 * index) as i32);
        let sigref = self.b.import_signature(helper_signature(sig));
        let mut call_args = args.to_vec();
        if sig == HelperSig::Call {
            let ctx = self.b.ins().load(
                types::I64,
                mem(),
                self.frame,
                (8 * frame::RUN_CONTEXT) as i32,
            );
            call_args.insert(0, ctx);
        }
        let call = self.b.ins().call_indirect(sigref, f, &call_args);
        self.b.inst_results(call).first().copied()
    }
}
