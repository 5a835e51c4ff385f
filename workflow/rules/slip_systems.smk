# Number of slip systems (appendix A.1, Fig. 7), at the figure's l: lambda_hat for each N of
# slip_systems.N with k_hat and chi_hat fixed (one job per N), against the Weibull expectation
# lambda_hat ~ N^(1/k_hat).

SLIP_CFG = config["slip_systems"]


def slip_cfg(w):
    return as_json({**strip(SLIP_CFG, "resources", "enabled", "N"), "model": config["model"],
                    "seed": config["seed"], "losses": macro_losses()})


def slip_tables():
    return [f"results/slip_systems/l{figure_l()}/N{n}.parquet" for n in SLIP_CFG["N"]]


rule slip_systems:
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
