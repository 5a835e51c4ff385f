# Number of slip systems (appendix A.1, Fig. 7) at the figure's l.
#
# slip_systems.method = retune (as A.1): for each N of slip_systems.N the calibration of section 4
# again (macro cells, meso cells and the fit, on the slip_systems.k grid with slip_systems.replicas
# per point, every other setting as the main sweep): k_hat, lambda_hat, chi_hat at that N.
# slip_systems.method = fixed: lambda_hat for each N with k_hat and chi_hat held at the optimum (a
# scan of the lambda scale against L_macro; one job per N), the quick check of the weakest-link
# rescaling lambda_hat ~ N^(1/k_hat).

SLIP_CFG = config["slip_systems"]
SLIP_RETUNE = SLIP_CFG.get("method", "retune") == "retune"


def slip_cfg(w):
    return as_json({**strip(SLIP_CFG, "resources", "enabled", "N", "method", "k"), "model": config["model"],
                    "seed": config["seed"], "losses": macro_losses()})


def SLIP_K_VALUES():
    return sorted({fmt_k(k) for k in grid(SLIP_CFG.get("k") or config["k"])}, key=float)


def slip_cell_cfg(stage, N):
    """A sweep cell's config (as cell_cfg) at N slip systems per element and slip_systems.replicas."""
    reps = int(SLIP_CFG["replicas"])
    c = {**strip(config[stage], "resources"), "replicas": reps, "model": {**config["model"], "N": int(N)},
         "losses": macro_losses() if stage == "macro" else config["losses"], "seed": config["seed"]}
    if stage == "macro" and "search" in c:
        c["search"] = {**c["search"], "coarse_replicas": min(reps, int(c["search"].get("coarse_replicas", reps)))}
    return as_json(c)


def slip_tables():
    if SLIP_RETUNE:
        return [f"results/slip_systems/l{figure_l()}/N{n}/fit.parquet" for n in SLIP_CFG["N"]]
    return [f"results/slip_systems/l{figure_l()}/N{n}.parquet" for n in SLIP_CFG["N"]]


use rule sweep_macro as slip_sweep_macro with:
    output:
        "results/slip_systems/l{l}/N{N}/macro/k{k}.parquet",
    params:
        ref=ref_dir(),
        cfg=lambda w: slip_cell_cfg("macro", w.N),
    threads: res("slip_systems", "threads", 1)
    resources:
        mem_mb=res("slip_systems", "mem_mb", 2000),
        runtime=res("slip_systems", "runtime", 30),
    log:
        log_of("slip_systems/l{l}/N{N}/macro/k{k}"),
    benchmark:
        bench_of("slip_systems/l{l}/N{N}/macro/k{k}")


use rule sweep_meso as slip_sweep_meso with:
    input:
        ref=ref_files(),
        macro="results/slip_systems/l{l}/N{N}/macro/k{k}.parquet",
        check="results/reference/check.parquet",
        kernel="results/kernels/l{l}.npz",
        code=code("sweep-meso"),
    output:
        "results/slip_systems/l{l}/N{N}/meso/k{k}.parquet",
    params:
        ref=ref_dir(),
        cfg=lambda w: slip_cell_cfg("meso", w.N),
    threads: res("slip_systems", "threads", 1)
    resources:
        mem_mb=res("slip_systems", "mem_mb", 2000),
        runtime=res("slip_systems", "runtime", 30),
    log:
        log_of("slip_systems/l{l}/N{N}/meso/k{k}"),
    benchmark:
        bench_of("slip_systems/l{l}/N{N}/meso/k{k}")


use rule fit as slip_fit with:
    input:
        cells=lambda w: expand("results/slip_systems/l{l}/N{N}/meso/k{k}.parquet", l=w.l, N=w.N, k=SLIP_K_VALUES()),
        code=code("fit"),
    output:
        "results/slip_systems/l{l}/N{N}/fit.parquet",
    log:
        log_of("slip_systems/l{l}/N{N}/fit"),
    benchmark:
        bench_of("slip_systems/l{l}/N{N}/fit")


rule slip_systems:
    """lambda_hat at N slip systems, k_hat and chi_hat fixed (method fixed)."""
    input:
        optimum="results/calibration/optimum.parquet",
        ref=ref_files(),
        code=code("slip-systems"),
    output:
        "results/slip_systems/l{l}/N{N}.parquet",
    params:
        ref=ref_dir(),
        cfg=slip_cfg,
    threads: res("slip_systems", "threads", 1)
    resources:
        mem_mb=res("slip_systems", "mem_mb", 2000),
        runtime=res("slip_systems", "runtime", 30),
    log:
        log_of("slip_systems/l{l}/N{N}"),
    benchmark:
        bench_of("slip_systems/l{l}/N{N}")
    conda:
        "../../envs/epcal.yaml"
    shell:
        "{EPCAL} slip-systems --n-systems {wildcards.N} --optimum {input.optimum} --ref {params.ref} "
        "--l {wildcards.l} --cfg {params.cfg:q} --threads {threads} --out {output} 2> {log}"


rule fig7:
    input:
        tables=slip_tables(),
        code=code("figure"),
    output:
        fig=report(f"results/figures/fig7.{FIG_EXT}", caption="../report/fig7.rst", category="Calibration"),
        data="results/figures/fig7.parquet",
    params:
        cfg=fig_cfg,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    log:
        log_of("figures/fig7"),
    benchmark:
        bench_of("figures/fig7")
    conda:
        "../../envs/epcal.yaml"
    shell:
        "{EPCAL} figure fig7 --inputs {input.tables} --cfg {params.cfg:q} --out {output.fig} --data {output.data} 2> {log}"
