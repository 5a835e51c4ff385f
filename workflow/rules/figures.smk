# Figures 2, 3, 4, 8, 9 of the paper (reference in blue, EPM in red), each with its data table.
# Only the `figures` config slice reaches these rules: changing a plot option reruns only them.

FIG_EXT = config["figures"]["format"]
FIGURES = [f"results/figures/{n}.{FIG_EXT}" for n in ("fig2", "fig3", "fig4", "fig8", "fig9")]
FIG_CATEGORY = {"fig2": "Macroscale", "fig3": "Calibration", "fig4": "Local statistics",
                "fig8": "Local statistics", "fig9": "Local statistics"}


def fig_cfg(w):
    return as_json({**config["figures"], "l": float(figure_l())})


def fig_rule_inputs(name):
    if name == "fig3":
        return ["results/calibration/select.parquet", "results/calibration/meso.parquet",
                "results/calibration/optimum.parquet"]
    if name == "fig2":
        return optimum_batches("macro")
    return optimum_batches("probe")


for _name in ("fig2", "fig3", "fig4", "fig8", "fig9"):

    rule:
        name: _name
        input:
            tables=fig_rule_inputs(_name),
            ref=ref_files() if _name != "fig3" else [],
            code=code("figures", "losses"),
        output:
            fig=report(f"results/figures/{_name}.{FIG_EXT}", caption=f"../report/{_name}.rst",
                       category=FIG_CATEGORY[_name]),
            data=f"results/figures/{_name}.parquet",
        params:
            cfg=fig_cfg,
            ref=ref_dir() if _name != "fig3" else None,
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
            "{EPCAL} figure {params.name} --inputs {input.tables} "
            + ("--ref {params.ref} " if _name != "fig3" else "")
            + "--cfg {params.cfg:q} --out {output.fig} --data {output.data} 2> {log}"
