# The calibration sweep of section 4: kernels, macro cells (one job per (l, k) with every
# (lambda, chi) and replica inside), meso cells around each cell's macro optimum, the
# parabola fit per l and the KMC temperature.


def cell_cfg(stage):
    """The config slice of a sweep cell: its stage section, the model, the losses it reads (macro:
    only those of L_macro), the seed."""
    losses = macro_losses() if stage == "macro" else config["losses"]
    return as_json({**strip(config[stage], "resources"), "model": config["model"], "losses": losses,
                    "seed": config["seed"]})


rule kernel:
    """FEM kernels of the l lattice (periodic L_EP x L_EP, and the patch of losses.R), computed once
    into the shared cache before the meso cells start (so concurrent meso jobs never build them
    together; the cache's writes are atomic, so a macro cell computing its periodic kernel is safe)."""
    input:
        ref=ref_files(),
        code=code("kernel-cell"),
    output:
        "results/kernels/l{l}.npz",
    params:
        ref=ref_dir(),
        cfg=lambda w: as_json({"model": config["model"], "R": config["losses"]["R"]}),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    log:
        log_of("kernels/l{l}"),
    benchmark:
        bench_of("kernels/l{l}")
    conda:
        "../../envs/epcal.yaml"
    shell:
        "{EPCAL} kernel-cell --ref {params.ref} --l {wildcards.l} --cfg {params.cfg:q} --out {output} 2> {log}"


rule sweep_macro:
    """L_macro over the (lambda, chi) search of one (l, k) cell (replicas batched inside).

    Its inputs are what decides its result: the reference tables, its code (and, as params, the
    macro keys of `losses`).  The reference check and the kernel job, which depend on losses.R,
    are inputs of the meso cells only, so a new R or orientation reruns no macro cell (the cell
    computes its periodic kernel itself if the shared cache does not have it yet)."""
    input:
        ref=ref_files(),
        code=code("sweep-macro"),
    output:
        "results/sweep/macro/l{l}/k{k}.parquet",
    params:
        ref=ref_dir(),
        cfg=lambda w: cell_cfg("macro"),
    threads: res("macro", "threads", 1)
    resources:
        mem_mb=res("macro", "mem_mb", 2000),
        runtime=res("macro", "runtime", 60),
    log:
        log_of("sweep/macro/l{l}/k{k}"),
    benchmark:
        bench_of("sweep/macro/l{l}/k{k}")
    conda:
        "../../envs/epcal.yaml"
    shell:
        "{EPCAL} sweep-macro --ref {params.ref} --l {wildcards.l} --k {wildcards.k} --cfg {params.cfg:q} "
        "--threads {threads} --out {output} 2> {log}"


rule sweep_meso:
    """L_stat (macro + patch probing at R ~ 30, alpha = 0 and 90) around the cell's macro optimum."""
    input:
        ref=ref_files(),
        macro="results/sweep/macro/l{l}/k{k}.parquet",
        check="results/reference/check.parquet",
        kernel="results/kernels/l{l}.npz",
        code=code("sweep-meso"),
    output:
        "results/sweep/meso/l{l}/k{k}.parquet",
    params:
        ref=ref_dir(),
        cfg=lambda w: cell_cfg("meso"),
    threads: res("meso", "threads", 1)
    resources:
        mem_mb=res("meso", "mem_mb", 2000),
        runtime=res("meso", "runtime", 60),
    log:
        log_of("sweep/meso/l{l}/k{k}"),
    benchmark:
        bench_of("sweep/meso/l{l}/k{k}")
    conda:
        "../../envs/epcal.yaml"
    shell:
        "{EPCAL} sweep-meso --ref {params.ref} --macro {input.macro} --cfg {params.cfg:q} "
        "--threads {threads} --out {output} 2> {log}"


rule select:
    """Best (lambda, chi) per (l, k) by L_macro, for the figures."""
    input:
        cells=expand("results/sweep/macro/l{l}/k{k}.parquet", l=L_VALUES(), k=K_VALUES()),
        code=code("select"),
    output:
        "results/calibration/select.parquet",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    log:
        log_of("calibration/select"),
    benchmark:
        bench_of("calibration/select")
    conda:
        "../../envs/epcal.yaml"
    shell:
        "{EPCAL} select {input.cells} --out {output} 2> {log}"


rule collect_meso:
    input:
        cells=expand("results/sweep/meso/l{l}/k{k}.parquet", l=L_VALUES(), k=K_VALUES()),
        code=code("collect"),
    output:
        "results/calibration/meso.parquet",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    log:
        log_of("calibration/collect_meso"),
    benchmark:
        bench_of("calibration/collect_meso")
    conda:
        "../../envs/epcal.yaml"
    shell:
        "{EPCAL} collect {input.cells} --out {output} 2> {log}"


rule fit:
    """Parabola fit of L_stat(k) -> k_hat, interpolated lam_hat, chi_hat, bootstrap errors (one l)."""
    input:
        cells=lambda w: expand("results/sweep/meso/l{l}/k{k}.parquet", l=w.l, k=K_VALUES()),
        code=code("fit"),
    output:
        "results/calibration/fit/l{l}.parquet",
    params:
        cfg=lambda w: as_json(config["fit"]),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    log:
        log_of("calibration/fit/l{l}"),
    benchmark:
        bench_of("calibration/fit/l{l}")
    conda:
        "../../envs/epcal.yaml"
    shell:
        "{EPCAL} fit {input.cells} --cfg {params.cfg:q} --out {output} 2> {log}"


rule quench_temperature:
    """KMC temperature scan at the optimum against the reference's quenched-state statistics."""
    input:
        ref=ref_files(),
        fit="results/calibration/fit/l{l}.parquet",
        code=code("quench-temperature"),
    output:
        "results/calibration/quench/l{l}.parquet",
    params:
        ref=ref_dir(),
        cfg=lambda w: as_json({**strip(config["quench"], "resources", "enabled", "half_width"), "model": config["model"],
                               "seed": config["seed"]}),
    threads: res("quench", "threads", 1)
    resources:
        mem_mb=res("quench", "mem_mb", 2000),
        runtime=res("quench", "runtime", 60),
    log:
        log_of("calibration/quench/l{l}"),
    benchmark:
        bench_of("calibration/quench/l{l}")
    conda:
        "../../envs/epcal.yaml"
    shell:
        "{EPCAL} quench-temperature --ref {params.ref} --fit {input.fit} --cfg {params.cfg:q} "
        "--threads {threads} --out {output} 2> {log}"


rule optimum_table:
    """results/calibration/optimum.parquet: (k_hat, lam_hat, chi_hat, T_hat) per l with errors."""
    input:
        fits=expand("results/calibration/fit/l{l}.parquet", l=L_VALUES()),
        temperatures=expand("results/calibration/quench/l{l}.parquet", l=L_VALUES())
        if config["quench"]["enabled"] else [],
        code=code("optimum"),
    output:
        table="results/calibration/optimum.parquet",
        csv="results/calibration/optimum.csv",
    params:
        cfg=lambda w: as_json({"half_width": config["quench"]["half_width"]}),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    log:
        log_of("calibration/optimum"),
    benchmark:
        bench_of("calibration/optimum")
    conda:
        "../../envs/epcal.yaml"
    shell:
        "{EPCAL} optimum --fits {input.fits} --temperatures {input.temperatures} --cfg {params.cfg:q} --out {output.table} "
        "--csv {output.csv} 2> {log}"
