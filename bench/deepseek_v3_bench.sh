#!/usr/bin/env bash
# deepseek_v3_bench (a 46M-parameter DeepSeek-V3-style model: MLA attention, 32 routed
# experts top-4 in 4 groups, 4 layers) on kiln and on ONNX Runtime, same model, sequence
# length and thread count, in one run: compiles the model once for every length asked, then
# per length runs `kiln bench` and bench/ort_bench.py, and prints both medians and the ratio
# kiln/ORT (lower is better; the goals: <= 0.15 at seq 512, <= 0.5 at seq 1).
#
#   bench/deepseek_v3_bench.sh [--seqs "512 128 1"] [--threads N] [--runs N] [--warmup N]
#                              [--model FILE.onnx] [--passes LIST] [--profile] [--no-build]
#
# --passes is given to `kiln compile` (`--passes canonicalize`: kiln without fusion);
# --profile adds `kiln bench --profile`'s table of where kiln's time goes.
# --runs defaults to 20 (10 at seq >= 256: a run of ONNX Runtime takes a second there).
# The model is not in ../shared: make it once (dynamic seq, about 3 minutes) with
#   SEQ=512 python ../shared/tools/export_hf.py deepseek_v3_bench RAW dynamo batched_mm
#   python ../shared/tools/build_cases.py RAW ../models-extra
# (KILN_MODELS_EXTRA, default ../models-extra beside the checkout, or --model). Needs the
# Python environment with onnxruntime (KILN_TOOLS_VENV, default ~/.venvs/kiln-tools). The
# machine should be otherwise idle: the medians are only as good as that.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
extra=${KILN_MODELS_EXTRA:-$root/../models-extra}
model=$extra/deepseek_v3_bench/model.onnx
venv=${KILN_TOOLS_VENV:-$HOME/.venvs/kiln-tools}
seqs="512 128 1" threads=2 runs= warmup=3 build=1 passes= profile=

while [ $# -gt 0 ]; do
    case $1 in
        --seqs) seqs=$2; shift 2 ;;
        --threads) threads=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --warmup) warmup=$2; shift 2 ;;
        --model) model=$2; shift 2 ;;
        --passes) passes=$2; shift 2 ;;
        --profile) profile=--profile; shift ;;
        --no-build) build=0; shift ;;
        -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "deepseek_v3_bench.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

[ -f "$model" ] || { echo "deepseek_v3_bench.sh: $model is absent (see --help to make it, or --model)" >&2; exit 1; }
[ -x "$venv/bin/python" ] || { echo "deepseek_v3_bench.sh: no Python environment at $venv (set KILN_TOOLS_VENV)" >&2; exit 1; }

cd "$root"
if [ "$build" = 1 ]; then
    cargo build --release -p kiln-compiler --bin kiln
fi
kiln=${CARGO_TARGET_DIR:-$root/target}/release/kiln

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
max=1
for s in $seqs; do [ "$s" -gt "$max" ] && max=$s; done
echo "== compiling $model for seq 1..$max"
"$kiln" compile "$model" -o "$work/model.kiln" --dim "seq=1..$max" ${passes:+--passes "$passes"}

median() { sed -n 's/^median \([0-9.]*\) ms.*/\1/p' "$1" | tail -1; }
summary=()
for s in $seqs; do
    n=${runs:-$([ "$s" -ge 256 ] && echo 10 || echo 20)}
    echo "== kiln: seq $s, $threads threads"
    "$kiln" bench "$work/model.kiln" --dim "seq=$s" \
        --threads "$threads" --runs "$n" --warmup "$warmup" $profile | tee "$work/kiln.$s.txt"
    echo "== ONNX Runtime: seq $s, $threads threads"
    "$venv/bin/python" bench/ort_bench.py "$model" --dim "seq=$s" \
        --threads "$threads" --runs "$n" --warmup "$warmup" | tee "$work/ort.$s.txt"
    k=$(median "$work/kiln.$s.txt")
    o=$(median "$work/ort.$s.txt")
    goal=$(case $s in 512) echo " (goal: <= 0.15)" ;; 1) echo " (goal: <= 0.50)" ;; *) echo "" ;; esac)
    summary+=("$(printf 'seq %-4s kiln %-40s ORT %-40s kiln/ORT = %s%s' "$s" \
        "$(tail -1 "$work/kiln.$s.txt")" "$(tail -1 "$work/ort.$s.txt")" \
        "$(awk -v k="$k" -v o="$o" 'BEGIN { printf "%.3f", k / o }')" "$goal")")
done

echo
echo "deepseek_v3_bench, $threads threads${passes:+, kiln passes $passes}"
printf '  %s\n' "${summary[@]}"
