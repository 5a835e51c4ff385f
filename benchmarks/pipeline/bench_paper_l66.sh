#!/usr/bin/env bash
# Speed of the l = 6.6 part of config/paper.yaml: twin reference (100 samples), 41 macro cells
# (scaled (lambda, chi) search, 48 replicas), 41 meso cells (R = 30, alpha = 0 and 90, 48 replicas)
# and the parabola fit.  Usage:
#   benchmarks/pipeline/bench_paper_l66.sh [CORES] [WORKDIR] [K-GRID-YAML]
# K-GRID-YAML overrides k (e.g. '[1.0,1.5,2.0,2.2,2.5,3.0]' for a subset to extrapolate from).
# Per-job seconds are in WORKDIR/results/benchmarks/**.tsv; summarize with summarize.py.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CORES="${1:-2}"
WORK="${2:-/tmp/epcal-bench-paper}"
KGRID="${3:-}"
mkdir -p "$WORK"
EXTRA=(--config 'l=[6.6]')
if [ -n "$KGRID" ]; then EXTRA+=("k=$KGRID"); fi
SNAKEMAKE="${SNAKEMAKE:-$ROOT/.venv/bin/snakemake}"
start=$(date +%s)
"$SNAKEMAKE" -s "$ROOT/Snakefile" --directory "$WORK" --configfile "$ROOT/config/paper.yaml" \
    "${EXTRA[@]}" -c "$CORES" -q --rerun-incomplete results/calibration/fit/l6.6.parquet
end=$(date +%s)
echo "wall seconds: $((end - start)) on $CORES cores"
"$ROOT/.venv/bin/python" "$HERE/summarize.py" "$WORK"
