//! A code blob: every generated function, laid out back to back. Calls between functions
//! of the blob are PC-relative and resolved here, at compile time, so the runtime maps the
//! blob and relocates nothing. Anything else that would need a relocation (a libcall, a
//! symbol outside the blob) is a code generation error.

use cranelift_codegen::binemit::Reloc;
use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::{ExternalName, Function};
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::{Context, FinalizedRelocTarget};

use crate::error::TargetError;

/// Functions start on this boundary.
const FUNCTION_ALIGN: usize = 16;

/// A function placed in the blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlacedFunction {
    pub name: String,
    pub offset: usize,
    pub len: usize,
}

/// A call site waiting for its callee's offset.
struct PendingCall {
    site: usize,
    addend: i64,
    callee: u32,
}

pub struct CodeBlob {
    isa: OwnedTargetIsa,
    code: Vec<u8>,
    functions: Vec<PlacedFunction>,
    pending: Vec<PendingCall>,
}

impl CodeBlob {
    pub fn new(isa: OwnedTargetIsa) -> CodeBlob {
        CodeBlob {
            isa,
            code: Vec::new(),
            functions: Vec::new(),
            pending: Vec::new(),
        }
    }

    pub fn isa(&self) -> &OwnedTargetIsa {
        &self.isa
    }

    /// Compiles `func` into the blob and returns its index. A call to user function
    /// `(0, k)` in `func` calls the blob's function number `k`.
    pub fn add(&mut self, name: &str, func: Function) -> Result<usize, TargetError> {
        let mut ctx = Context::for_function(func);
        let compiled = ctx
            .compile(&*self.isa, &mut ControlPlane::default())
            .map_err(|e| TargetError::Codegen {
                func: name.to_string(),
                msg: format!("{:?}", e.inner),
            })?;
        while !self.code.len().is_multiple_of(FUNCTION_ALIGN) {
            self.code.push(0xCC); // int3 between functions
        }
        let offset = self.code.len();
        let bytes = compiled.code_buffer().to_vec();
        let relocs = compiled.buffer.relocs().to_vec();
        for r in &relocs {
            let site = offset + r.offset as usize;
            let callee = match (&r.kind, &r.target) {
                (
                    Reloc::X86CallPCRel4 | Reloc::X86PCRel4,
                    FinalizedRelocTarget::ExternalName(ExternalName::User(u)),
                ) => ctx.func.params.user_named_funcs()[*u].index,
                _ => {
                    return Err(TargetError::Codegen {
                        func: name.to_string(),
                        msg: format!(
                            "needs a relocation kiln does not resolve: {:?} to {:?}",
                            r.kind, r.target
                        ),
                    })
                }
            };
            self.pending.push(PendingCall {
                site,
                addend: r.addend,
                callee,
            });
        }
        self.code.extend_from_slice(&bytes);
        self.functions.push(PlacedFunction {
            name: name.to_string(),
            offset,
            len: bytes.len(),
        });
        Ok(self.functions.len() - 1)
    }

    /// Resolves the calls between functions and returns the code and the placements.
    pub fn finish(mut self) -> Result<(Vec<u8>, Vec<PlacedFunction>), TargetError> {
        for call in &self.pending {
            let target =
                self.functions
                    .get(call.callee as usize)
                    .ok_or_else(|| TargetError::Codegen {
                        func: "blob".into(),
                        msg: format!("call to function {} that was never added", call.callee),
                    })?;
            let rel = target.offset as i64 + call.addend - call.site as i64;
            let rel = i32::try_from(rel).map_err(|_| TargetError::Codegen {
                func: "blob".into(),
                msg: "code blob larger than a 32-bit displacement reaches".into(),
            })?;
            self.code[call.site..call.site + 4].copy_from_slice(&rel.to_le_bytes());
        }
        Ok((self.code, self.functions))
    }
}

#[cfg(test)]
mod tests {
    use cranelift_codegen::ir::condcodes::IntCC;
    use cranelift_codegen::ir::{
        types, AbiParam, ExtFuncData, ExternalName, InstBuilder, MemFlagsData, Signature,
        UserExternalName, UserFuncName,
    };
    use cranelift_codegen::isa::CallConv;
    use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
    use kiln_runtime::artifact::{write_artifact, ArtifactFile, ArtifactParts, Features, Target};

    use super::*;
    use crate::cpu::codegen::isa::{x86_64_isa, CpuFeatures};

    fn frame_sig() -> Signature {
        let mut sig = Signature::new(CallConv::SystemV);
        sig.params.push(AbiParam::new(types::I64));
        sig
    }

    /// `out[i] = a[i] + b[i]` for i < n, four lanes at a time, then a scalar tail.
    /// Frame: [a, b, out, n].
    fn add_f32(isa: &OwnedTargetIsa) -> Function {
        let mut f = Function::with_name_signature(UserFuncName::user(0, 0), frame_sig());
        let mut fctx = FunctionBuilderContext::new();
        let mut b = FunctionBuilder::new(&mut f, &mut fctx);
        let entry = b.create_block();
        let (vhead, vbody, shead, sbody, exit) = (
            b.create_block(),
            b.create_block(),
            b.create_block(),
            b.create_block(),
            b.create_block(),
        );
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        let frame = b.block_params(entry)[0];
        let fl = MemFlagsData::new().with_notrap();
        let a = b.ins().load(types::I64, fl, frame, 0);
        let bb = b.ins().load(types::I64, fl, frame, 8);
        let out = b.ins().load(types::I64, fl, frame, 16);
        let n = b.ins().load(types::I64, fl, frame, 24);
        let zero = b.ins().iconst(types::I64, 0);
        b.append_block_param(vhead, types::I64);
        b.ins().jump(vhead, &[zero.into()]);
        b.switch_to_block(vhead);
        let i = b.block_params(vhead)[0];
        let i4 = b.ins().iadd_imm_s(i, 4);
        let fits = b.ins().icmp(IntCC::SignedLessThanOrEqual, i4, n);
        b.append_block_param(shead, types::I64);
        b.ins().brif(fits, vbody, &[], shead, &[i.into()]);
        b.switch_to_block(vbody);
        let off = b.ins().ishl_imm_u(i, 2);
        let (pa, pb, po) = (
            b.ins().iadd(a, off),
            b.ins().iadd(bb, off),
            b.ins().iadd(out, off),
        );
        let x = b.ins().load(types::F32X4, fl, pa, 0);
        let y = b.ins().load(types::F32X4, fl, pb, 0);
        let s = b.ins().fadd(x, y);
        b.ins().store(fl, s, po, 0);
        b.ins().jump(vhead, &[i4.into()]);
        b.switch_to_block(shead);
        let j = b.block_params(shead)[0];
        let more = b.ins().icmp(IntCC::SignedLessThan, j, n);
        b.ins().brif(more, sbody, &[], exit, &[]);
        b.switch_to_block(sbody);
        let off = b.ins().ishl_imm_u(j, 2);
        let (pa, pb, po) = (
            b.ins().iadd(a, off),
            b.ins().iadd(bb, off),
            b.ins().iadd(out, off),
        );
        let x = b.ins().load(types::F32, fl, pa, 0);
        let y = b.ins().load(types::F32, fl, pb, 0);
        let s = b.ins().fadd(x, y);
        b.ins().store(fl, s, po, 0);
        let j1 = b.ins().iadd_imm_s(j, 1);
        b.ins().jump(shead, &[j1.into()]);
        b.switch_to_block(exit);
        b.ins().return_(&[]);
        b.seal_all_blocks();
        b.finalize(isa.frontend_config());
        f
    }

    /// An entry that calls blob function 0 with its own frame: exercises call resolution.
    fn entry_calling_add(isa: &OwnedTargetIsa) -> Function {
        let mut f = Function::with_name_signature(UserFuncName::user(0, 1), frame_sig());
        let callee_name = f.declare_imported_user_function(UserExternalName::new(0, 0));
        let sig = f.import_signature(frame_sig());
        let callee = f.import_function(ExtFuncData {
            name: ExternalName::user(callee_name),
            signature: sig,
            colocated: true,
            patchable: false,
        });
        let mut fctx = FunctionBuilderContext::new();
        let mut b = FunctionBuilder::new(&mut f, &mut fctx);
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        let frame = b.block_params(entry)[0];
        b.ins().call(callee, &[frame]);
        b.ins().return_(&[]);
        b.seal_all_blocks();
        b.finalize(isa.frontend_config());
        f
    }

    #[test]
    fn generated_code_runs_from_an_artifact() {
        let host = CpuFeatures::host();
        let isa = x86_64_isa(host).unwrap();
        let (add, entry_fn) = (add_f32(&isa), entry_calling_add(&isa));
        let mut blob = CodeBlob::new(isa);
        blob.add("add_f32", add).unwrap();
        let entry = blob.add("entry", entry_fn).unwrap();
        let (code, placed) = blob.finish().unwrap();
        let dir = std::env::temp_dir().join(format!("kiln-blob-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("add.kiln");
        write_artifact(
            &path,
            &ArtifactParts {
                target: Target::CpuX86_64,
                features: Features::from_names(&host.names()).unwrap(),
                manifest: b"{}",
                code: &code,
                weights: &[],
            },
        )
        .unwrap();
        let art = ArtifactFile::open(&path).unwrap();
        let f = art.function(placed[entry].offset).unwrap();
        let a: Vec<f32> = (0..11).map(|i| i as f32).collect();
        let b: Vec<f32> = (0..11).map(|i| 100.0 * i as f32).collect();
        let mut out = vec![0.0f32; 11];
        let frame = [
            a.as_ptr() as u64,
            b.as_ptr() as u64,
            out.as_mut_ptr() as u64,
            11,
        ];
        // SAFETY: the frame holds two readable and one writable buffer of 11 f32, as the
        // generated function expects.
        unsafe { f(frame.as_ptr()) };
        let want: Vec<f32> = (0..11).map(|i| 101.0 * i as f32).collect();
        assert_eq!(out, want);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
