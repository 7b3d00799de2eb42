#!/usr/bin/env bash
# deepseek_v3_bench's decode step (seq 1) priced on an Ascend profile: compiles the model
# for the profile with --dim seq=1 and prints `kiln run --profile`'s estimated device time
# (the cost model's, not a measurement: see runtime/src/ascend/cost.rs).
#
#   bench/deepseek_v3_ascend.sh [--profile-name ascend910b2] [--dtype fp16|bf16]
#                               [--token N] [--model FILE.onnx] [--table] [--no-build]
#
# --table prints the whole per-kernel table, not only the total. The model is made as
# bench/deepseek_v3_bench.sh --help says (KILN_MODELS_EXTRA, default ../models-extra).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
extra=${KILN_MODELS_EXTRA:-$root/../models-extra}
model=$extra/deepseek_v3_bench/model.onnx
target=ascend910b2 dtype=fp16 token=1 build=1 table=0

while [ $# -gt 0 ]; do
    case $1 in
        --profile-name) target=$2; shift 2 ;;
        --dtype) dtype=$2; shift 2 ;;
        --token) token=$2; shift 2 ;;
        --model) model=$2; shift 2 ;;
        --table) table=1; shift ;;
        --no-build) build=0; shift ;;
        -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "deepseek_v3_ascend.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

[ -f "$model" ] || { echo "deepseek_v3_ascend.sh: $model is absent (see bench/deepseek_v3_bench.sh --help to make it, or --model)" >&2; exit 1; }

cd "$root"
if [ "$build" = 1 ]; then
    cargo build --release -p kiln-compiler --bin kiln
fi
kiln=${CARGO_TARGET_DIR:-$root/target}/release/kiln

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# input_ids: one int64 token, shape (1, 1), as a version 1 .npy (header padded to 64 bytes).
header="{'descr': '<i8', 'fortran_order': False, 'shape': (1, 1), }"
header=$(printf '%-117s' "$header")
{
    printf '\x93NUMPY\x01\x00\x76\x00%s\n' "$header"
    printf "$(printf '\\%03o' $((token & 255)) $((token >> 8 & 255)) $((token >> 16 & 255)) $((token >> 24 & 255)) 0 0 0 0)"
} > "$work/ids.npy"

"$kiln" compile "$model" -o "$work/model.kiln" --target "$target" --dtype "$dtype" --dim seq=1
"$kiln" run "$work/model.kiln" --input "input_ids=$work/ids.npy" -o "$work" --profile > "$work/profile.txt"
if [ "$table" = 1 ]; then
    cat "$work/profile.txt"
else
    grep '^estimated device time' "$work/profile.txt"
fi
