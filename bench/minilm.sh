#!/usr/bin/env bash
# MiniLM on kiln and on ONNX Runtime, same model, shape and thread count, in one run:
# compiles the model, runs `kiln bench` and bench/ort_bench.py, prints both medians and
# the ratio kiln/ORT (the goal: <= 0.7).
#
#   bench/minilm.sh [--seq N] [--batch N] [--threads N] [--runs N] [--warmup N]
#                   [--model FILE.onnx] [--no-build] [--gemm] [--profile]
#
# --gemm also runs the GEMM microbenchmark (cargo bench -p kiln-runtime --bench gemm).
# --profile has kiln print where its time goes (`kiln bench --profile`: per op, per kernel
# or helper, slowest steps).
# Needs the Python environment with onnxruntime (KILN_TOOLS_VENV, default
# ~/.venvs/kiln-tools) and the model (KILN_MODELS, default ../shared/models beside the
# checkout). The machine should be otherwise idle: the medians are only as good as that.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
models=${KILN_MODELS:-$root/../shared/models}
model=$models/minilm/model.onnx
venv=${KILN_TOOLS_VENV:-$HOME/.venvs/kiln-tools}
seq=128 batch=1 threads=2 runs=50 warmup=5 build=1 gemm=0 profile=

while [ $# -gt 0 ]; do
    case $1 in
        --seq) seq=$2; shift 2 ;;
        --batch) batch=$2; shift 2 ;;
        --threads) threads=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --warmup) warmup=$2; shift 2 ;;
        --model) model=$2; shift 2 ;;
        --no-build) build=0; shift ;;
        --gemm) gemm=1; shift ;;
        --profile) profile=--profile; shift ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "minilm.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

[ -f "$model" ] || { echo "minilm.sh: $model is absent (set KILN_MODELS or --model)" >&2; exit 1; }
[ -x "$venv/bin/python" ] || { echo "minilm.sh: no Python environment at $venv (set KILN_TOOLS_VENV)" >&2; exit 1; }

cd "$root"
if [ "$build" = 1 ]; then
    cargo build --release -p kiln-compiler --bin kiln
fi
kiln=${CARGO_TARGET_DIR:-$root/target}/release/kiln

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "== compiling $model"
"$kiln" compile "$model" -o "$work/minilm.kiln" --dim "batch=1..$batch" --dim "seq=1..$(( seq > 512 ? seq : 512 ))"

echo "== kiln: batch $batch, seq $seq, $threads threads"
"$kiln" bench "$work/minilm.kiln" --dim "batch=$batch" --dim "seq=$seq" \
    --threads "$threads" --runs "$runs" --warmup "$warmup" $profile | tee "$work/kiln.txt"

echo "== ONNX Runtime: batch $batch, seq $seq, $threads threads"
"$venv/bin/python" bench/ort_bench.py "$model" --dim "batch=$batch" --dim "seq=$seq" \
    --threads "$threads" --runs "$runs" --warmup "$warmup" | tee "$work/ort.txt"

median() { sed -n 's/^median \([0-9.]*\) ms.*/\1/p' "$1" | tail -1; }
minimum() { sed -n 's/^median .*(min \([0-9.]*\),.*/\1/p' "$1" | tail -1; }
k=$(median "$work/kiln.txt")
o=$(median "$work/ort.txt")
kmin=$(minimum "$work/kiln.txt")
omin=$(minimum "$work/ort.txt")
echo
echo "MiniLM batch $batch seq $seq, $threads threads"
echo "  kiln  $(tail -1 "$work/kiln.txt")"
echo "  ORT   $(tail -1 "$work/ort.txt")"
awk -v k="$k" -v o="$o" 'BEGIN { printf "  kiln/ORT = %.2f (goal: <= 0.70)\n", k / o }'
# On a shared machine the fastest runs are the least disturbed: their ratio too.
awk -v k="$kmin" -v o="$omin" 'BEGIN { printf "  kiln/ORT of the minimums = %.2f\n", k / o }'

if [ "$gemm" = 1 ]; then
    echo
    echo "== GEMM microbenchmark"
    cargo bench -p kiln-runtime --bench gemm
fi
