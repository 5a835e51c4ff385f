#!/usr/bin/env bash
# Speed of the l = 6.6 part of config/paper.yaml against a twin reference (100 samples), 41 macro cells
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
# the paper's config restricted to l = 6.6 (and optionally a k subset); snakemake's --config cannot
# set one-letter keys, so a derived config file is written
"$ROOT/.venv/bin/python" - "$ROOT/config/paper.yaml" "$WORK/paper_l66.yaml" "$KGRID" <<'PY'
import sys, yaml
cfg = yaml.safe_load(open(sys.argv[1]))
cfg["l"] = [6.6]
cfg["reference"]["source"] = "twin"  # a recovery: the twin at the paper's optimum is the reference
if sys.argv[3]:
    cfg["k"] = yaml.safe_load(sys.argv[3])
yaml.safe_dump(cfg, open(sys.argv[2], "w"), sort_keys=False)
PY
SNAKEMAKE="${SNAKEMAKE:-$ROOT/.venv/bin/snakemake}"
start=$(date +%s)
"$SNAKEMAKE" results/calibration/fit/l6.6.parquet -s "$ROOT/Snakefile" --directory "$WORK" \
    --configfile "$WORK/paper_l66.yaml" -c "$CORES" -q --rerun-incomplete
end=$(date +%s)
echo "wall seconds: $((end - start)) on $CORES cores"
"$ROOT/.venv/bin/python" "$HERE/summarize.py" "$WORK"
