# Model variants of appendix A.8 (Figs. 6 and 10), at the figure's l:
#   variant_calibration (one job per variant, A-I) -> L_stat over the variant's free parameters
#   (common random numbers): a space-filling design, Nelder-Mead from its best points, best point
#   with bootstrap errors and parameter errors (epcal.variant_search);
#   fig6 / fig10: relative errors of every variant at its own optimum.
# Target `variants` runs them whether or not variants.enabled adds them to `all`.

VARIANTS_CFG = config["variants"]


def variants_cfg(w):
    return as_json({**strip(VARIANTS_CFG, "resources", "enabled", "names"), "model": config["model"],
                    "seed": config["seed"], "losses": config.get("losses", {}),
                    "T_default": config["optimum"].get("T_default", 0.25)})


def variant_tables():
    return [f"results/variants/l{figure_l()}/{v}.parquet" for v in VARIANTS_CFG["names"]]


VARIANT_FIGURES = [f"results/figures/{n}.{FIG_EXT}" for n in ("fig6", "fig10")]


rule variant_calibration:
    input:
        optimum="results/calibration/optimum.parquet",
        ref=ref_files(),
        code=code("variant"),
    output:
        "results/variants/l{l}/{v}.parquet",
    params:
        ref=ref_dir(),
        cfg=variants_cfg,
    threads: res("variants", "threads", 1)
    resources:
        mem_mb=res("variants", "mem_mb", 3000),
        runtime=res("variants", "runtime", 60),
    log:
        log_of("variants/l{l}/{v}"),
    benchmark:
        bench_of("variants/l{l}/{v}")
    conda:
        "../../envs/epcal.yaml"
    shell:
        # one BLAS thread per job: model A's FEM solves are small, and OpenBLAS threads that spin against the
        # numba replicas on a loaded machine cost 10-50x (measured: 6.6 s instead of 0.44 s for an L_EP = 15 lattice)
        "OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 {EPCAL} variant --variant {wildcards.v} --optimum {input.optimum} --ref {params.ref} --l {wildcards.l} "
        "--cfg {params.cfg:q} --threads {threads} --out {output} 2> {log}"


for _name in ("fig6", "fig10"):

    rule:
        name: _name
        input:
            tables=variant_tables(),
            code=code("figure"),
        output:
            fig=report(f"results/figures/{_name}.{FIG_EXT}", caption=f"../report/{_name}.rst",
                       category="Model variants"),
            data=f"results/figures/{_name}.parquet",
        params:
            cfg=fig_cfg,
            name=_name,
        threads: 1
        resources:
            mem_mb=1000,
            runtime=10,
        log:
            log_of(f"figures/{_name}"),
        benchmark:
            bench_of(f"figures/{_name}")
        conda:
            "../../envs/epcal.yaml"
        shell:
            "{EPCAL} figure {params.name} --inputs {input.tables} --cfg {params.cfg:q} "
            "--out {output.fig} --data {output.data} 2> {log}"

