"""A tiny end-to-end calibration, its report, recovery of the twin's parameters, and incremental reruns.

One module-scoped run (about 1-2 minutes on 2 cores) of a tiny config against a twin reference
made by the EPM at (k, lam, chi, T) = (2.2, 2.0, 2.25, 0.25), inside the searched ranges.
The workflow files and src/epcal are copied into the run directory so that the incremental
tests can touch "source files" without touching the repository (the jobs still run the
installed epcal package).
"""
from __future__ import annotations

import copy
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from test_pipeline_config import SNAKEMAKE, job_counts

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not Path(SNAKEMAKE).exists(), reason="snakemake not installed")

TWIN = {"l": 6.6, "k": 2.2, "lam": 2.0, "chi": 2.25, "T": 0.25}
TINY = {
    "seed": 31,
    "l": [6.6],
    "k": [1.6, 1.9, 2.2, 2.5, 2.8],
    "model": {"G": 13.2, "B": 59.0, "domain_length": 98.8045, "N": None},
    "reference": {"source": "twin",
                  "twin": {**TWIN, "seed": 9001, "replicas": 16, "n_list": [7, 8], "alpha": [0.0, 45.0, 90.0, 135.0]}},
    "losses": {"R": "auto"},  # the twin's patches of n = 8 have R = l n / sqrt(pi) = 29.73
    "macro": {"replicas": 8, "n_boot": 20,
              "search": {"method": "scaled", "lam": {"min": 0.5, "max": 5.0, "num": 10, "log": True},
                         "chi": [1.0, 2.0, 3.0, 4.0], "coarse_replicas": 4, "refine": 2}},
    "meso": {"replicas": 8, "n_boot": 40, "neighborhood": {"lam_rel": [-0.05, 0.0, 0.05], "chi": [0.0], "valley": 2}},
    "fit": {"half_width": None, "interp": "regression"},
    "quench": {"enabled": True, "T": [0.15, 0.25, 0.35], "replicas": 4, "n_boot": 20, "R": "auto"},
    "optimum": {"replicas": 4, "batch_size": 2, "n_alpha": 4, "stride": 3},
    "emergent": {"sizes": [6, 10], "size_replicas": 3, "bauschinger_replicas": 3, "bauschinger_strain": 0.05,
                 "rms_windows": [0.0001, 0.001, 0.01, 0.1]},
    "variants": {"enabled": True, "names": ["A", "B", "C", "H"], "replicas": 3, "max_evals": 4, "n_boot": 5,
                 "stride": 3, "search": {"design": 5, "local": 1}},
    "slip_systems": {"method": "fixed", "N": [8, 16, 32], "replicas": 6, "n_boot": 10},
    "figures": {"dpi": 60},
}
FIGS = {"fig2", "fig3", "fig4", "fig5", "fig6", "fig7", "fig8", "fig9", "fig10"}


def snake(workdir: Path, *args, dry=False, timeout=600):
    cmd = [SNAKEMAKE, "-s", str(workdir / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(workdir / "tiny.yaml"), "-c", "2"]
    if dry:
        cmd.append("-n")
    cmd += list(args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def write_cfg(workdir: Path, cfg: dict):
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(cfg))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("pipeline")
    shutil.copy(ROOT / "Snakefile", d / "Snakefile")
    shutil.copytree(ROOT / "workflow", d / "workflow")
    shutil.copytree(ROOT / "config", d / "config")
    shutil.copytree(ROOT / "envs", d / "envs")
    shutil.copytree(ROOT / "src" / "epcal", d / "src" / "epcal", ignore=shutil.ignore_patterns("__pycache__"))
    write_cfg(d, TINY)
    t0 = time.perf_counter()
    r = snake(d)
    elapsed = time.perf_counter() - t0
    if r.returncode != 0:
        logs = "\n".join(f"--- {p}\n{p.read_text()[-1500:]}" for p in (d / "results" / "logs").rglob("*.log"))
        pytest.fail(f"pipeline failed:\n{r.stderr[-4000:]}\n{logs[-6000:]}")
    (d / "elapsed.txt").write_text(f"{elapsed:.1f}\n")
    return d


def test_end_to_end_outputs(run_dir):
    opt = pd.read_parquet(run_dir / "results/calibration/optimum.parquet")
    need = ["l", "k_hat", "lam_hat", "chi_hat", "T_hat", "L_stat", "L_macro", "L_meso_plus", "L_meso_minus"]
    for c in need:
        assert c in opt and np.isfinite(opt[c]).all(), c
        if c != "l":
            assert f"{c}_err" in opt, c
    for n in sorted(FIGS):
        # a non-trivial image (fig6: two groups of three bars at dpi 60 is a small file)
        assert (run_dir / f"results/figures/{n}.png").stat().st_size > (3_000 if n == "fig6" else 10_000)
        data = pd.read_parquet(run_dir / f"results/figures/{n}.parquet")
        assert len(data) > 0 and {"panel", "series", "x", "y"} <= set(data.columns)
    # every rule leaves a log and a benchmark
    assert list((run_dir / "results/logs").rglob("*.log")) and list((run_dir / "results/benchmarks").rglob("*.tsv"))
    # the optimum ensemble came in 2 batches with disjoint replicas
    b0 = pd.read_parquet(run_dir / "results/optimum/l6.6/macro_b0.parquet")
    b1 = pd.read_parquet(run_dir / "results/optimum/l6.6/macro_b1.parquet")
    assert set(b0.replica) == {0, 1} and set(b1.replica) == {2, 3}
    assert float((run_dir / "elapsed.txt").read_text()) < 300


def test_emergent_properties(run_dir):
    """Fig. 5 data: r(dgamma) grows with the window and stays below std(Sigma_ext) (a std over a
    window of the stationary curve cannot exceed, on average, the std over the whole curve by much);
    the size-scaling tables cover every size and the Bauschinger reverse reload is softer."""
    data = pd.read_parquet(run_dir / "results/figures/fig5.parquet")
    for ser in ("reference", "epm"):
        a = data[(data.panel == "a") & (data.series == ser)]
        r = a[a.quantity == "r"].sort_values("x")["y"].to_numpy()
        sd = float(a[a.quantity == "sigma_std"]["y"].iloc[0])
        assert len(r) == 4 and np.all(np.diff(r) > 0), (ser, r)
        assert r[-1] < 1.2 * sd, (ser, r, sd)
    b = data[(data.panel == "b") & (data.series == "epm") & (data.quantity == "sigma_std")]
    side = 98.8045 / 15  # the element side of the l = 6.6 lattice (Table 1: L_EP = 15)
    assert sorted(b["x"]) == pytest.approx([6 * side, 10 * side])
    d = data[data.panel == "d"]
    fwd = d[d.state == "forward"].set_index("x")["y"]
    rev = d[d.state == "reverse"].set_index("x")["y"]
    # mid-way through the reload the reverse branch carries less stress (Bauschinger effect)
    mid = fwd.index[len(fwd) // 2]
    assert rev[mid] < fwd[mid], (fwd[mid], rev[mid])
    size = pd.read_parquet(run_dir / "results/emergent/l6.6/size_L10.parquet")
    assert set(size.replica) == {0, 1, 2} and (size.sigma_std > 0).all()


def test_variant_calibration(run_dir):
    """Each variant's search evaluates a space-filling design, then Nelder-Mead from its best point; it keeps the
    best point with bootstrap errors and varies only the variant's free parameters (H: tau_c and dgamma_pl; k,
    lam, chi stay at model C's optimum).  A and B (heterogeneous moduli, pressure-sensitive thresholds) are
    calibrated like the others."""
    opt = pd.read_parquet(run_dir / "results/calibration/optimum.parquet").iloc[0]
    c = pd.read_parquet(run_dir / "results/variants/l6.6/C.parquet")
    assert (c.stage == "design").sum() == 5 and set(c.stage) <= {"design", "local"}
    best = c[c.best]
    assert len(best) == 1 and best["L_stat"].iloc[0] == c["L_stat"].min()
    assert 0 < best["L_stat_err"].iloc[0] < 0.5
    h = pd.read_parquet(run_dir / "results/variants/l6.6/H.parquet")
    assert h["tau_c"].nunique() > 1 and h["dgamma_pl"].nunique() > 1
    assert (h["k"] == opt.k_hat).all() and (h["chi"] == opt.chi_hat).all()
    for v in ("A", "B"):
        t = pd.read_parquet(run_dir / f"results/variants/l6.6/{v}.parquet")
        assert t.free.iloc[0] == "k,lam,chi" and t.best.sum() == 1 and np.isfinite(t[t.best].L_stat).all()
    fig6 = pd.read_parquet(run_dir / "results/figures/fig6.parquet")
    assert set(fig6.series) == {"A", "B", "C", "H"} and set(fig6.quantity) == {"L_macro", "L_meso_plus", "L_meso_minus"}


def test_lambda_rescales_with_the_number_of_slip_systems(run_dir):
    """Appendix A.1: with k_hat and chi_hat fixed, lambda_hat(N) ~ N^(1/k_hat) (the weakest of N Weibull
    thresholds has scale lambda N^(-1/k)), and the best L_macro does not depend on N.  Tolerance on
    the exponent 0.12: lambda_hat is resolved to ~2 % per N with 6 replicas (bootstrap errors in the
    table), i.e. ~0.04 on a slope over a factor 4 in N, times 3."""
    opt = pd.read_parquet(run_dir / "results/calibration/optimum.parquet").iloc[0]
    data = pd.read_parquet(run_dir / "results/figures/fig7.parquet")
    slope = float(data[data.quantity == "exponent"]["y"].iloc[0])
    assert abs(slope - 1 / opt.k_hat) < 0.12, (slope, 1 / opt.k_hat)
    best = pd.concat([pd.read_parquet(p) for p in (run_dir / "results/slip_systems/l6.6").glob("N*.parquet")])
    best = best[best.best]
    assert sorted(best.N) == [8, 16, 32] and (best.lam_hat_err > 0).all()
    assert best.L_macro.max() - best.L_macro.min() < 0.1


def test_report(run_dir):
    r = snake(run_dir, "--report", str(run_dir / "report.html"), timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    html = (run_dir / "report.html").read_text(errors="ignore")
    assert "fig2" in html and "Figure 3" in html


def test_recovery_of_twin_parameters(run_dir):
    """The calibration recovers (k, lam, chi, T) of the twin within three of its reported error bars
    (joint bootstrap of the EPM replicas and the twin's own replicas), and says whether each is an
    estimate (the twin's parameters lie inside the searched ranges, so they must be estimates)."""
    opt = pd.read_parquet(run_dir / "results/calibration/optimum.parquet").iloc[0]
    assert opt["k_hat_status"] == "estimate" and opt["T_hat_status"] == "estimate"
    for x in ("k", "lam", "chi", "T"):
        err = opt[f"{x}_hat_err"]
        assert abs(opt[f"{x}_hat"] - TWIN[x]) <= 3 * err, (x, opt[f"{x}_hat"], err)
        # the two contributions are there and the joint error is not smaller than either
        assert 0 < opt[f"{x}_hat_err_epm"] and 0 < opt[f"{x}_hat_err_ref"], x
    # the error bars are real (non-zero) and not so wide that the test is void
    assert 0 < opt["k_hat_err"] < 0.6
    # the lattice the optimum was found on is recorded (Table 1 at l = 6.6)
    assert (opt["L_EP"], opt["N"], opt["n"]) == (15, 36, 8)
    # the macro optimum at the twin's k is near perfect and much better than at the k edges
    sel = pd.read_parquet(run_dir / "results/calibration/select.parquet")
    at = sel.set_index("k")["L_macro"]
    assert at[2.2] < 0.1
    assert abs(sel.set_index("k").loc[2.2, "lam"] - TWIN["lam"]) < 0.2


# ------------------------------------------------------------------ incremental reruns (dry runs)
def test_nothing_to_do_after_the_run(run_dir):
    r = snake(run_dir, dry=True)
    assert r.returncode == 0
    assert job_counts(r.stdout) == {}, r.stdout[-2000:]


def test_adding_a_k_runs_only_the_new_cells_and_dependants(run_dir):
    cfg = copy.deepcopy(TINY)
    cfg["k"] = TINY["k"] + [3.0]
    write_cfg(run_dir, cfg)
    try:
        c = job_counts(snake(run_dir, dry=True).stdout)
    finally:
        write_cfg(run_dir, TINY)
    assert c["sweep_macro"] == 1 and c["sweep_meso"] == 1
    for stale in ("reference_twin", "reference_check", "kernel"):
        assert stale not in c
    for dep in ("fit", "optimum_table", "fig3", "select"):
        assert c[dep] == 1


def test_plot_option_reruns_only_figures(run_dir):
    cfg = copy.deepcopy(TINY)
    cfg["figures"] = {"dpi": 61}
    write_cfg(run_dir, cfg)
    try:
        c = job_counts(snake(run_dir, dry=True).stdout)
    finally:
        write_cfg(run_dir, TINY)
    assert set(c) - {"all"} == FIGS, c


def test_meso_option_reruns_meso_and_downstream_not_macro(run_dir):
    cfg = copy.deepcopy(TINY)
    cfg["meso"] = {**TINY["meso"], "n_boot": 41}
    write_cfg(run_dir, cfg)
    try:
        c = job_counts(snake(run_dir, dry=True).stdout)
    finally:
        write_cfg(run_dir, TINY)
    assert c["sweep_meso"] == 5 and "sweep_macro" not in c and "reference_twin" not in c


def test_artifacts_record_the_reference_used(run_dir):
    """Issue 11 case 1: the start-up resolution (source, why, radii) is in every table's metadata."""
    from epcal.schema import read_metadata

    for f in ("results/calibration/optimum.parquet", "results/sweep/macro/l6.6/k2.20.parquet",
              "results/figures/fig4.parquet", "results/reference/twin/probe.parquet"):
        used = read_metadata(run_dir / f)["reference_used"]
        assert used["source"] == "twin" and "reference.source = twin" in used["reason"], (f, used)
        assert used["radii"]["losses.R"] == pytest.approx(8 * 98.8045 / 15 / np.sqrt(np.pi)), (f, used)


def test_losses_meso_keys_rerun_no_macro_cell(run_dir):
    """Issue 11 case 6: the macro cells read only gamma_min, max_n, quantize_increments of `losses`:
    changing alpha_minus or R reruns the meso cells and what follows, not the macro cells."""
    for change in ({"alpha_minus": 135.0}, {"R": 26.0}):  # the twin has alpha 135 and n = 7 (R = 26.01)
        cfg = copy.deepcopy(TINY)
        cfg["losses"] = {**TINY["losses"], **change}
        write_cfg(run_dir, cfg)
        try:
            r = snake(run_dir, dry=True)
        finally:
            write_cfg(run_dir, TINY)
        c = job_counts(r.stdout)
        assert r.returncode == 0 and c.get("sweep_meso") == 5, (change, c, r.stderr[-2000:])
        assert "sweep_macro" not in c and "reference_twin" not in c, (change, c)


def test_equal_values_rerun_nothing(run_dir):
    """Issue 11 cases 6 and 8: seed=3.1e1 is the config's 31, and nested --config values are read as
    the schema's types (meso.n_boot = 40 as in the config): nothing to do."""
    for extra in (["--config", "seed=3.1e1"], ["--config", "meso={n_boot: 40}"]):
        r = snake(run_dir, *extra, dry=True)
        assert r.returncode == 0 and job_counts(r.stdout) == {}, (extra, r.stdout[-1500:], r.stderr[-1500:])


def test_engine_files_the_old_hand_list_missed_rerun_the_sweeps(run_dir):
    """Issue 11 case 5: the rules' code dependencies come from what their verb uses, so editing
    vecmath.py (threshold draws) or variants.py reruns the sweeps; restoring the file reruns nothing."""
    for name in ("vecmath.py", "variants.py"):
        path = run_dir / "src" / "epcal" / name
        text = path.read_text()
        _touch(path)
        try:
            c = job_counts(snake(run_dir, dry=True).stdout)
        finally:
            path.write_text(text)
        assert c.get("sweep_macro") == 5 and c.get("sweep_meso") == 5 and c.get("reference_twin") == 1, (name, c)
        assert job_counts(snake(run_dir, dry=True).stdout) == {}, name


def test_killed_job_resumes_to_the_same_bytes(run_dir):
    """SIGKILL of Snakemake and its job in the middle of a macro cell; --unlock and --rerun-incomplete
    then give the cell's table byte for byte (the measured fault behaviour of issue 11)."""
    import signal

    target = "results/sweep/macro/l6.6/k2.20.parquet"
    out, log = run_dir / target, run_dir / "results/logs/sweep/macro/l6.6/k2.20.log"
    before = out.read_bytes()
    out.unlink()
    log.unlink()
    cmd = [SNAKEMAKE, "-s", str(run_dir / "Snakefile"), "--directory", str(run_dir), "--configfile",
           str(run_dir / "tiny.yaml"), "-c", "1", target]
    job = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and not (log.exists() and "L_macro" in log.read_text()):
        time.sleep(0.2)  # until the cell has evaluated its first (lambda, chi)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    assert not out.exists(), "the job finished before it was killed: the test killed nothing"
    assert snake(run_dir, "--unlock").returncode == 0
    r = snake(run_dir, target, "--rerun-incomplete")
    assert r.returncode == 0, r.stderr[-3000:]
    assert out.read_bytes() == before
    assert job_counts(snake(run_dir, dry=True).stdout) == {}


def _touch(path: Path):
    """Change the code (Snakemake ignores a newer mtime when the content checksum is unchanged)."""
    with open(path, "a") as fh:
        fh.write("\n# edited by the incremental-rerun test\n")
    t = time.time() + 5
    os.utime(path, (t, t))


def test_code_change_reruns_the_rules_that_use_it(run_dir):
    src = run_dir / "src" / "epcal"
    _touch(src / "figures.py")
    c = job_counts(snake(run_dir, dry=True).stdout)
    assert set(c) - {"all"} == FIGS, c
    _touch(src / "fits.py")
    c = job_counts(snake(run_dir, dry=True).stdout)
    assert "fit" in c and "sweep_macro" not in c and "sweep_meso" not in c
    _touch(src / "dynamics.py")
    c = job_counts(snake(run_dir, dry=True).stdout)
    assert c["sweep_macro"] == 5 and c["sweep_meso"] == 5 and c["reference_twin"] == 1


def test_figure_verb_draws_from_the_ensemble_what_the_split_rules_drew(run_dir, tmp_path):
    """`epcal figure fig4` (ensemble -> table -> plot in one process) gives the table the pipeline's
    cluster-side fig4_data job wrote and the local fig4 rule drew."""
    import json
    import sys

    probes = sorted(str(p) for p in (run_dir / "results/optimum/l6.6").glob("probe_b*.parquet"))
    cfg = {"dpi": 60, "bins": 60, "l": 6.6}
    r = subprocess.run([sys.executable, "-m", "epcal.cli.calibrate", "figure", "fig4", "--inputs", *probes,
                        "--ref", str(run_dir / "results/reference/twin"), "--cfg", json.dumps(cfg),
                        "--out", str(tmp_path / "fig4.png"), "--data", str(tmp_path / "fig4.parquet")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "fig4.parquet"),
                                  pd.read_parquet(run_dir / "results/figures/fig4.parquet"), check_exact=True)
    assert (tmp_path / "fig4.png").stat().st_size > 10_000
