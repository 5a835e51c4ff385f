# Figures 2, 3, 4, 8, 9 of the paper (reference in blue, EPM in red), each with its data table.
# Figs. 2, 4, 8, 9 (and 5, emergent.smk) read the optimum ensemble and the reference tables: a
# cluster job (figN_data, src/epcal/figure_data.py) reduces them to the figure's small data table
# results/figures/figN.parquet, and the figure rule (local) only draws that table.
# Only the `figures` config slice reaches these rules; a plot option (dpi, colors, format) redraws
# the figures without recomputing their tables.

FIG_EXT = config["figures"]["format"]
FIGURES = [f"results/figures/{n}.{FIG_EXT}" for n in ("fig2", "fig3", "fig4", "fig8", "fig9")]
FIG_CATEGORY = {"fig2": "Macroscale", "fig3": "Calibration", "fig4": "Local statistics",
                "fig8": "Local statistics", "fig9": "Local statistics"}
ENSEMBLE_FIGS = ("fig2", "fig4", "fig8", "fig9")


def fig_cfg(w):
    return as_json({**config["figures"], "l": float(figure_l())})


def fig_data_cfg(name):
    """The part of the figures slice a figure's data table depends on (the PDF bins of Figs. 4 and 9)."""
    return as_json({"bins": config["figures"]["bins"]} if name in ("fig4", "fig9") else {})


def fig_data_mem(wildcards, input):
    """Memory of a figure-data job: the tables it reads, a few times their size on disk."""
    return max(2000, int(4 * input.size_mb) + 1000)


def fig_rule_inputs(name):
    if name == "fig2":
        return optimum_batches("macro")
    return optimum_batches("probe")


for _name in ENSEMBLE_FIGS:

    rule:
        name: f"{_name}_data"
        input:
            tables=fig_rule_inputs(_name),
            ref=ref_files(),
            code=code("figure-data"),
        output:
            f"results/figures/{_name}.parquet",
        params:
            cfg=fig_data_cfg(_name),
            ref=ref_dir(),
            name=_name,
        threads: 1
        resources:
            mem_mb=fig_data_mem,
            runtime=30,
        log:
            log_of(f"figures/{_name}_data"),
        benchmark:
            bench_of(f"figures/{_name}_data")
        conda:
            "../../envs/epcal.yaml"
        shell:
            "{EPCAL} figure-data {params.name} --inputs {input.tables} --ref {params.ref} --cfg {params.cfg:q} "
            "--out {output} 2> {log}"

    rule:
        name: _name
        input:
            data=f"results/figures/{_name}.parquet",
            code=code("figure-plot"),
        output:
            fig=report(f"results/figures/{_name}.{FIG_EXT}", caption=f"../report/{_name}.rst",
                       category=FIG_CATEGORY[_name]),
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
            "{EPCAL} figure-plot {params.name} --data {input.data} --cfg {params.cfg:q} --out {output.fig} 2> {log}"


rule fig3:
    input:
        tables=["results/calibration/select.parquet", "results/calibration/meso.parquet",
                "results/calibration/optimum.parquet"],
        code=code("figure"),
    output:
        fig=report(f"results/figures/fig3.{FIG_EXT}", caption="../report/fig3.rst", category=FIG_CATEGORY["fig3"]),
        data="results/figures/fig3.parquet",
    params:
        cfg=fig_cfg,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    log:
        log_of("figures/fig3"),
    benchmark:
        bench_of("figures/fig3")
    conda:
        "../../envs/epcal.yaml"
    shell:
        "{EPCAL} figure fig3 --inputs {input.tables} --cfg {params.cfg:q} --out {output.fig} --data {output.data} 2> {log}"
