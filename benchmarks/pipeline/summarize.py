"""Sum the Snakemake benchmark files of a pipeline run per rule (seconds, jobs)."""
import sys
from pathlib import Path

import pandas as pd

work = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
rows = []
for f in (work / "results" / "benchmarks").rglob("*.tsv"):
    s = pd.read_csv(f, sep="\t")["s"].iloc[-1]
    rule = f.relative_to(work / "results" / "benchmarks").parts
    import re

    parts = [q.removesuffix(".tsv") for q in rule]
    stage = "/".join(q for q in parts if not re.fullmatch(r"[lkb][0-9.]+", q))
    rows.append({"stage": stage, "job": "/".join(rule), "seconds": s})
df = pd.DataFrame(rows)
g = df.groupby("stage")["seconds"].agg(["count", "sum", "mean", "max"]).round(2)
print(g.to_string())
print(f"total job-seconds: {df.seconds.sum():.1f}")
