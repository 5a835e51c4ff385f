# Emergent properties at the optimum (paper section 5, Fig. 5), at the figure's l:
#   emergent_size (one job per lattice size L_EP) -> finite-size scaling of std(Sigma_ext)
#   emergent_bauschinger                         -> unload from the stationary state, reload both senses
#   fig5_data (cluster job): r(dgamma) from the optimum ensemble's stress-strain curves, the two
#         tables above and <delta tau_c> vs <tau_c> from its probe tables, against the reference;
#   fig5 (local): draws that table.
# Only the `emergent` config slice (plus seed and model) reaches these jobs.

EMERGENT = config["emergent"]


def emergent_cfg(w):
    return as_json({**strip(EMERGENT, "resources", "enabled"), "model": config["model"], "seed": config["seed"],
                    "T_default": config["optimum"].get("T_default", 0.25)})


def emergent_tables():
    l = figure_l()
    return [f"results/emergent/l{l}/size_L{L}.parquet" for L in EMERGENT["sizes"]] + \
        [f"results/emergent/l{l}/bauschinger.parquet"]


rule emergent_size:
    input:
        optimum="results/calibration/optimum.parquet",
        ref=ref_files(),
        code=code("emergent-size"),
    output:
        "results/emergent/l{l}/size_L{L}.parquet",
    params:
        ref=ref_dir(),
        cfg=emergent_cfg,
    threads: res("emergent", "threads", 1)
    resources:
        mem_mb=res("emergent", "mem_mb", 2000),
        runtime=res("emergent", "runtime", 30),
    log:
        log_of("emergent/l{l}/size_L{L}"),
    benchmark:
        bench_of("emergent/l{l}/size_L{L}")
    conda:
        "../../envs/epcal.yaml"
    shell:
        "{EPCAL} emergent-size --optimum {input.optimum} --ref {params.ref} --l {wildcards.l} --size {wildcards.L} "
        "--cfg {params.cfg:q} --threads {threads} --out {output} 2> {log}"


rule emergent_bauschinger:
    input:
        optimum="results/calibration/optimum.parquet",
        ref=ref_files(),
        code=code("emergent-bauschinger"),
    output:
        "results/emergent/l{l}/bauschinger.parquet",
    params:
        ref=ref_dir(),
        cfg=emergent_cfg,
    threads: res("emergent", "threads", 1)
    resources:
        mem_mb=res("emergent", "mem_mb", 2000),
        runtime=res("emergent", "runtime", 30),
    log:
        log_of("emergent/l{l}/bauschinger"),
    benchmark:
        bench_of("emergent/l{l}/bauschinger")
    conda:
        "../../envs/epcal.yaml"
    shell:
        "{EPCAL} emergent-bauschinger --optimum {input.optimum} --ref {params.ref} --l {wildcards.l} "
        "--cfg {params.cfg:q} --threads {threads} --out {output} 2> {log}"


def ref_bauschinger():
    """The reference's optional Bauschinger table (Fig. 5d), when its directory has one."""
    f = Path(ref_dir()) / "bauschinger.parquet"
    return [str(f)] if f.exists() else []


rule fig5_data:
    """Fig. 5's data table from the optimum ensemble, the emergent tables and the reference (cluster job)."""
    input:
        tables=optimum_batches("macro") + optimum_batches("probe") + emergent_tables(),
        ref=ref_files() + ref_bauschinger(),
        code=code("figure-data"),
    output:
        "results/figures/fig5.parquet",
    params:
        cfg=lambda w: as_json({"rms_windows": EMERGENT["rms_windows"]}),
        ref=ref_dir(),
    threads: 1
    resources:
        mem_mb=fig_data_mem,
        runtime=30,
    log:
        log_of("figures/fig5_data"),
    benchmark:
        bench_of("figures/fig5_data")
    conda:
        "../../envs/epcal.yaml"
    shell:
        "{EPCAL} figure-data fig5 --inputs {input.tables} --ref {params.ref} --cfg {params.cfg:q} --out {output} 2> {log}"


rule fig5:
    """Draw Fig. 5 from its data table (local)."""
    input:
        data="results/figures/fig5.parquet",
        code=code("figure-plot"),
    output:
        fig=report(f"results/figures/fig5.{FIG_EXT}", caption="../report/fig5.rst", category="Emergent properties"),
    params:
        cfg=fig_cfg,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    log:
        log_of("figures/fig5"),
    benchmark:
        bench_of("figures/fig5")
    conda:
        "../../envs/epcal.yaml"
    shell:
        "{EPCAL} figure-plot fig5 --data {input.data} --cfg {params.cfg:q} --out {output.fig} 2> {log}"
