# Reference data: a directory with macro.parquet, probe.parquet, reference.yaml
# (source: tables -> the user's directory, validated at start-up and by reference_check;
#  source: twin   -> made here by the EPM at reference.twin parameters, seed disjoint from `seed`;
#  source: atomistic -> made by workflow/rules/reference.smk).


def twin_res(key, default):
    return ((config["reference"].get("twin") or {}).get("resources") or {}).get(key, default)


rule reference_twin:
    output:
        [f"{TWIN_DIR}/{f}" for f in REF_FILES],
    params:
        cfg=lambda w: as_json({"twin": strip(config["reference"]["twin"], "resources"), "model": config["model"]}),
        out=TWIN_DIR,
    input:
        code=code("reference-twin"),
    threads: twin_res("threads", 1)
    resources:
        mem_mb=twin_res("mem_mb", 4000),
        runtime=twin_res("runtime", 60),
    log:
        log_of("reference/twin"),
    benchmark:
        bench_of("reference/twin")
    conda:
        "../../envs/epcal.yaml"
    shell:
        "{EPCAL} reference-twin --cfg {params.cfg:q} --out {params.out} 2> {log}"


rule reference_check:
    """Validate the reference (tables, keys, usable statistics) before the meso cells run (the
    start-up has checked shipped or user tables already; a twin or atomistic reference is made by
    a job, and checked here)."""
    input:
        ref=ref_files(),
        code=code("reference-check"),
    output:
        "results/reference/check.parquet",
    params:
        ref=ref_dir(),
        cfg=lambda w: as_json({"losses": config["losses"]}),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    log:
        log_of("reference/check"),
    benchmark:
        bench_of("reference/check")
    conda:
        "../../envs/epcal.yaml"
    shell:
        "{EPCAL} reference-check --ref {params.ref} --cfg {params.cfg:q} --out {output} 2> {log}"
