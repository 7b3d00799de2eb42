#!/usr/bin/env bash
# MiniLM on kiln and on ONNX Runtime, same model, shape and thread count, in one run:
# compiles the model, then alternates `kiln bench` and bench/ort_bench.py for several
# rounds, printing each round's medians and ratio kiln/ORT, then the median ratio over the
# rounds (the goal: <= 0.7).
#
#   bench/minilm.sh [--seq N] [--batch N] [--threads N] [--rounds N] [--runs N]
#                   [--warmup N] [--model FILE.onnx] [--no-build] [--gemm] [--profile]
#
# --rounds (default 20) rounds of --runs (default 10) timed runs each side. Alternating
# rounds lets both engines see the same machine: on a shared VM the speed drifts by tens of
# percent over minutes, so one long run of each would compare different machines.
# --gemm also runs the GEMM microbenchmark (cargo bench -p kiln-runtime --bench gemm).
# --profile has kiln print where its time goes (`kiln bench --profile`: per op, per kernel
# or helper, slowest steps), in the first round.
# Needs the Python environment with onnxruntime (KILN_TOOLS_VENV, default
# ~/.venvs/kiln-tools) and the model (KILN_MODELS, default ../shared/models beside the
# checkout). The machine should be otherwise idle: the medians are only as good as that.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
models=${KILN_MODELS:-$root/../shared/models}
model=$models/minilm/model.onnx
venv=${KILN_TOOLS_VENV:-$HOME/.venvs/kiln-tools}
seq=128 batch=1 threads=2 rounds=20 runs=10 warmup=5 build=1 gemm=0 profile=

while [ $# -gt 0 ]; do
    case $1 in
        --seq) seq=$2; shift 2 ;;
        --batch) batch=$2; shift 2 ;;
        --threads) threads=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --warmup) warmup=$2; shift 2 ;;
        --model) model=$2; shift 2 ;;
        --no-build) build=0; shift ;;
        --gemm) gemm=1; shift ;;
        --profile) profile=--profile; shift ;;
        -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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

median() { sed -n 's/^median \([0-9.]*\) ms.*/\1/p' "$1" | tail -1; }
# The middle value of the numbers on stdin (the lower middle for an even count).
middle() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

echo "== $rounds rounds of $runs runs each (after $warmup warm-up runs): batch $batch, seq $seq, $threads threads"
: > "$work/rounds.txt"
for r in $(seq "$rounds"); do
    "$kiln" bench "$work/minilm.kiln" --dim "batch=$batch" --dim "seq=$seq" \
        --threads "$threads" --runs "$runs" --warmup "$warmup" $profile > "$work/kiln.txt" 2>&1 \
        || { cat "$work/kiln.txt" >&2; exit 1; }
    if [ -n "$profile" ]; then sed -n '/^op /,$p' "$work/kiln.txt"; fi
    profile=
    "$venv/bin/python" bench/ort_bench.py "$model" --dim "batch=$batch" --dim "seq=$seq" \
        --threads "$threads" --runs "$runs" --warmup "$warmup" > "$work/ort.txt" 2>&1 \
        || { cat "$work/ort.txt" >&2; exit 1; }
    k=$(median "$work/kiln.txt") o=$(median "$work/ort.txt")
    echo "$k $o" >> "$work/rounds.txt"
    awk -v r="$r" -v k="$k" -v o="$o" \
        'BEGIN { printf "round %d: kiln median %.2f ms, ORT median %.2f ms, kiln/ORT %.2f\n", r, k, o, k / o }'
done
grep -m1 "^ort: onnxruntime" "$work/ort.txt" || true

k=$(cut -d' ' -f1 "$work/rounds.txt" | middle)
o=$(cut -d' ' -f2 "$work/rounds.txt" | middle)
ratio=$(awk '{ printf "%.4f\n", $1 / $2 }' "$work/rounds.txt" | middle)
echo
echo "MiniLM batch $batch seq $seq, $threads threads, $rounds rounds of $runs runs"
echo "  kiln  median of round medians $k ms"
echo "  ORT   median of round medians $o ms"
awk -v x="$ratio" 'BEGIN { printf "  kiln/ORT = %.2f, the median of the per-round ratios (goal: <= 0.70)\n", x }'

if [ "$gemm" = 1 ]; then
    echo
    echo "== GEMM microbenchmark"
    cargo bench -p kiln-runtime --bench gemm
fi
