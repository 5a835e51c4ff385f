"""Sum the Snakemake benchmark files of a pipeline run per rule (seconds, jobs)."""
import sys
from pathlib import Path

import pandas as pd

work = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
rows = []
for f in (work / "results" / "benchmarks").rglob("*.tsv"):
    s = pd.read_csv(f, sep="\t")["s"].iloc[-1]
    rule = f.relative_to(work / "results" / "benchmarks").parts
    rows.append({"stage": "/".join(rule[:2]) if rule[0] == "sweep" else rule[0] + "/" + rule[1].split(".")[0].split("l")[0],
                 "job": "/".join(rule), "seconds": s})
df = pd.DataFrame(rows)
g = df.groupby("stage")["seconds"].agg(["count", "sum", "mean", "max"]).round(2)
print(g.to_string())
print(f"total job-seconds: {df.seconds.sum():.1f}")
