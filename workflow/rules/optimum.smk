# The ensemble at the optimum (section 4.2: 1024 runs in the paper), in batches of
# optimum.batch_size replicas: quench and stationary states probed at every n up to R ~ 30
# and optimum.n_alpha orientations.


rule optimum_ensemble:
    input:
        optimum="results/calibration/optimum.parquet",
        ref=ref_files(),
        code=code("optimum-ensemble"),
    output:
        macro="results/optimum/l{l}/macro_b{b}.parquet",
        probe="results/optimum/l{l}/probe_b{b}.parquet",
    params:
        ref=ref_dir(),
        cfg=lambda w: as_json({**strip(config["optimum"], "resources"), "model": config["model"],
                               "seed": config["seed"]}),
    threads: res("optimum", "threads", 1)
    resources:
        mem_mb=res("optimum", "mem_mb", 4000),
        runtime=res("optimum", "runtime", 60),
    log:
        log_of("optimum/l{l}/b{b}"),
    benchmark:
        bench_of("optimum/l{l}/b{b}")
    conda:
        "../../envs/epcal.yaml"
    shell:
        "{EPCAL} optimum-ensemble --optimum {input.optimum} --ref {params.ref} --l {wildcards.l} --batch {wildcards.b} "
        "--cfg {params.cfg:q} --threads {threads} --out-macro {output.macro} --out-probe {output.probe} 2> {log}"


def optimum_batches(kind, l=None):
    l = figure_l() if l is None else l
    return [f"results/optimum/l{l}/{kind}_b{b}.parquet" for b in range(n_batches())]
