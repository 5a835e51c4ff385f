# Atomistic reference with LAMMPS (paper section 2; DESIGN.md section 5).
#
#   ref_prepare (per sample) -> ref_shear (per sample, resumable) ->
#   ref_probe (per sample and state: quench | stationary, resumable) -> ref_tables
#
# Consumes config["reference"]["atomistic"] (keys: workflow/schemas/atomistic.schema.yaml).
# Final reference directory: <outdir>/tables/{macro,macro_steps,probe}.parquet + reference.yaml
# (the layout of `reference.source: tables`; copy it to a directory under resources/ to ship it).
# Resuming: the AQS and probe jobs write checkpoints next to their outputs
# (<outdir>/checkpoints/, not declared as outputs, so an interrupted or failed job
# keeps them); rerunning the same target continues from the last checkpoint.
import json
import shlex

from snakemake.utils import validate

validate(config["reference"]["atomistic"], "../schemas/atomistic.schema.yaml")

include: "../profiles/slurm/preflight.smk"  # --executor slurm: start-up checks (also when run standalone)
ATOM = config["reference"]["atomistic"]
ATOM_OUT = ATOM.get("outdir", "results/reference/atomistic")
ATOM_REPLICAS = list(ATOM.get("replicas", range(ATOM["n_samples"])))
if len(ATOM_REPLICAS) != ATOM["n_samples"]:
    raise ValueError(f"reference.atomistic: 'replicas' lists {len(ATOM_REPLICAS)} samples, "
                     f"n_samples is {ATOM['n_samples']}")
ATOM_CHUNKS = list(range(ATOM.get("probe_chunks", 1)))


def _atom(key, default=None):
    return ATOM.get(key, default)


# MPI inside a job: mpi_ranks LAMMPS ranks per job (each with `threads` OpenMP threads), launched
# by `mpi_launcher` (e.g. "mpirun -np" on a workstation, "srun -n" on SLURM) followed by the rank
# count.  mpi_ranks = 1 (default): no launcher, a plain serial job.  Snakemake counts
# mpi_ranks x threads cores per job; the SLURM executor gets tasks = mpi_ranks and
# cpus_per_task = threads (and the `mpi` resource, which marks an MPI job): prepare and shear.
# The probe jobs have their own count, probe_mpi_ranks (default 1): their time goes mostly into the
# Python-side Newton solver of the patches, which every rank repeats; probe_chunks parallelizes them.
ATOM_THREADS = int(_atom("threads", 1))


def _mpi(ranks):
    """(launcher prefix of the shell command, extra resources) of a job with ``ranks`` MPI ranks."""
    ranks = int(ranks)
    if ranks <= 1:
        return "", {}
    launcher = _atom("mpi_launcher", "mpirun -np")
    return f"{launcher} {ranks} ", {"mpi": launcher, "tasks": ranks}


ATOM_RANKS = int(_atom("mpi_ranks", 1))
ATOM_LAUNCH, ATOM_MPI = _mpi(ATOM_RANKS)
PROBE_RANKS = int(_atom("probe_mpi_ranks", 1))
PROBE_LAUNCH, PROBE_MPI = _mpi(PROBE_RANKS)


rule ref_all:
    """The atomistic reference directory, checked (standalone: snakemake -s workflow/rules/reference.smk)."""
    input:
        f"{ATOM_OUT}/tables/.checked",


rule ref_prepare:
    output:
        state=f"{ATOM_OUT}/glass/glass_{{r}}.npz",
        info=f"{ATOM_OUT}/glass/glass_{{r}}.json",
        trace=f"{ATOM_OUT}/glass/equilibration_{{r}}.parquet",
    params:
        n_atoms=ATOM["n_atoms"], seed=ATOM["seed"], t_equil=ATOM["t_equil"],
        temperature=_atom("temperature", 0.351), dt=_atom("dt", 0.005),
        quench_ftol=_atom("quench_ftol", 1e-10), n_trace=_atom("n_trace", 100), omp=ATOM_THREADS,
        launch=ATOM_LAUNCH,
    threads: ATOM_RANKS * ATOM_THREADS
    resources:
        mem_mb=_atom("mem_mb", 1000), runtime=_atom("runtime_prepare", 60), cpus_per_task=ATOM_THREADS,
        **ATOM_MPI,
    log: f"{ATOM_OUT}/logs/prepare_{{r}}.log"
    benchmark: f"{ATOM_OUT}/benchmarks/prepare_{{r}}.tsv"
    shell:
        "OMP_NUM_THREADS={params.omp} EPCAL_LAMMPS_THREADS={params.omp} {params.launch}epcal reference prepare "
        "--n-atoms {params.n_atoms} --replica {wildcards.r} --seed {params.seed} "
        "--t-equil {params.t_equil} --temperature {params.temperature} --dt {params.dt} "
        "--quench-ftol {params.quench_ftol} --n-trace {params.n_trace} --out-state {output.state} --out-info {output.info} "
        "--out-trace {output.trace} > {log} 2>&1"


# the stationary states that are kept and probed: gamma_ext = stationary_gammas (default: gamma_max only)
STAT_GAMMAS = [float(g) for g in _atom("stationary_gammas", [ATOM["gamma_max"]])]
for _g in STAT_GAMMAS:
    if not 0 < _g <= ATOM["gamma_max"]:
        raise ValueError(f"reference.atomistic.stationary_gammas: {_g} is outside (0, gamma_max = {ATOM['gamma_max']}]")
STATES = ["quench"] + [f"stationary_g{g:g}" for g in STAT_GAMMAS]
G_FINAL = f"{float(ATOM['gamma_max']):g}"
# orientations: alpha at every R, alpha_by_R replaces them at single radii (e.g. every 15 deg at R = 30)
ALPHA_BY_R = " ".join(f"--alpha-by-R {float(d['R']):g}:{','.join(f'{float(a):g}' for a in d['alpha'])}"
                      for d in _atom("alpha_by_R", []))
for _d in _atom("alpha_by_R", []):
    if float(_d["R"]) not in [float(r) for r in ATOM["R"]]:
        raise ValueError(f"reference.atomistic.alpha_by_R: R = {_d['R']} is not one of R = {ATOM['R']}")


def _snapshot_args(w):
    return " ".join(f"--snapshot {g:g} {ATOM_OUT}/aqs/stationary_{w.r}_g{g:g}.npz"
                    for g in STAT_GAMMAS if f"{g:g}" != G_FINAL)


rule ref_shear:
    input:
        state=rules.ref_prepare.output.state,
    output:
        steps=f"{ATOM_OUT}/aqs/steps_{{r}}.parquet",
        state=f"{ATOM_OUT}/aqs/stationary_{{r}}_g{G_FINAL}.npz",
        snapshots=[f"{ATOM_OUT}/aqs/stationary_{{r}}_g{g:g}.npz" for g in STAT_GAMMAS if f"{g:g}" != G_FINAL],
    params:
        snapshots=_snapshot_args,
        gamma_max=ATOM["gamma_max"], dgamma=_atom("dgamma", 1e-4), ftol=_atom("aqs_ftol", 5e-4),
        every=_atom("checkpoint_every", 500),
        checkpoint=f"{ATOM_OUT}/checkpoints/aqs_{{r}}.npz", solver=_atom("aqs_solver", "cg"),
        omp=ATOM_THREADS, launch=ATOM_LAUNCH,
    threads: ATOM_RANKS * ATOM_THREADS
    resources:
        mem_mb=_atom("mem_mb", 1000), runtime=_atom("runtime_shear", 120), cpus_per_task=ATOM_THREADS,
        **ATOM_MPI,
    log: f"{ATOM_OUT}/logs/shear_{{r}}.log"
    benchmark: f"{ATOM_OUT}/benchmarks/shear_{{r}}.tsv"
    shell:
        "OMP_NUM_THREADS={params.omp} EPCAL_LAMMPS_THREADS={params.omp} NUMBA_NUM_THREADS={params.omp} "
        "{params.launch}epcal reference shear "
        "--state {input.state} --replica {wildcards.r} "
        "--gamma-max {params.gamma_max} --dgamma {params.dgamma} --ftol {params.ftol} --solver {params.solver} "
        "--checkpoint {params.checkpoint} --checkpoint-every {params.every} {params.snapshots} "
        "--out-steps {output.steps} --out-state {output.state} > {log} 2>&1"


def _probe_state(w):
    if w.state == "quench":
        return rules.ref_prepare.output.state.format(r=w.r)
    return f"{ATOM_OUT}/aqs/{w.state.replace('stationary_', f'stationary_{w.r}_')}.npz"


rule ref_probe:
    input:
        state=_probe_state,
    output:
        probe=f"{ATOM_OUT}/probe/probe_{{state}}_{{r}}_{{chunk}}.parquet",
    wildcard_constraints:
        state=r"quench|stationary_g[0-9.]+",
        chunk=r"[0-9]+",
    params:
        R=" ".join(map(str, ATOM["R"])), alpha=" ".join(map(str, ATOM["alpha"])), alpha_by_R=ALPHA_BY_R,
        state_name=lambda w: "quench" if w.state == "quench" else "stationary",
        grid=ATOM["grid_spacing"], coarse=_atom("probe_coarse", 20), ftol=_atom("probe_ftol", 1e-8),
        gamma_max=_atom("probe_gamma_max", 0.5),
        checkpoint=f"{ATOM_OUT}/checkpoints/probe_{{state}}_{{r}}_{{chunk}}.parquet",
        n_chunks=len(ATOM_CHUNKS), omp=ATOM_THREADS, launch=PROBE_LAUNCH,
    threads: PROBE_RANKS * ATOM_THREADS
    resources:
        mem_mb=_atom("mem_mb", 1000), runtime=_atom("runtime_probe", 120), cpus_per_task=ATOM_THREADS,
        **PROBE_MPI,
    log: f"{ATOM_OUT}/logs/probe_{{state}}_{{r}}_{{chunk}}.log"
    benchmark: f"{ATOM_OUT}/benchmarks/probe_{{state}}_{{r}}_{{chunk}}.tsv"
    shell:
        "OMP_NUM_THREADS={params.omp} EPCAL_LAMMPS_THREADS={params.omp} {params.launch}epcal reference probe "
        "--state {input.state} --state-name {params.state_name} --replica {wildcards.r} "
        "--R {params.R} --alpha {params.alpha} {params.alpha_by_R} --grid {params.grid} --coarse {params.coarse} "
        "--ftol {params.ftol} --gamma-max {params.gamma_max} --chunk {wildcards.chunk} "
        "--n-chunks {params.n_chunks} --checkpoint {params.checkpoint} "
        "--out {output.probe} > {log} 2>&1"


BAUSCHINGER_STRAIN = _atom("bauschinger_strain", 0.1)


rule ref_bauschinger:
    """Bauschinger test of a stationary state: unload to zero stress, reload both senses (Fig. 5d)."""
    input:
        state=rules.ref_shear.output.state,
    output:
        f"{ATOM_OUT}/bauschinger/bauschinger_{{r}}.parquet",
    params:
        strain=BAUSCHINGER_STRAIN, dgamma=_atom("dgamma", 1e-4), ftol=_atom("aqs_ftol", 5e-4),
        omp=ATOM_THREADS, launch=ATOM_LAUNCH,
    threads: ATOM_RANKS * ATOM_THREADS
    resources:
        mem_mb=_atom("mem_mb", 1000), runtime=_atom("runtime_shear", 120), cpus_per_task=ATOM_THREADS,
        **ATOM_MPI,
    log: f"{ATOM_OUT}/logs/bauschinger_{{r}}.log"
    benchmark: f"{ATOM_OUT}/benchmarks/bauschinger_{{r}}.tsv"
    shell:
        "OMP_NUM_THREADS={params.omp} EPCAL_LAMMPS_THREADS={params.omp} {params.launch}epcal reference bauschinger "
        "--state {input.state} --replica {wildcards.r} --strain {params.strain} --dgamma {params.dgamma} "
        "--ftol {params.ftol} --out {output} > {log} 2>&1"


rule ref_tables:
    input:
        steps=expand(f"{ATOM_OUT}/aqs/steps_{{r}}.parquet", r=ATOM_REPLICAS),
        bauschinger=expand(f"{ATOM_OUT}/bauschinger/bauschinger_{{r}}.parquet", r=ATOM_REPLICAS)
        if BAUSCHINGER_STRAIN > 0 else [],
        probes=expand(f"{ATOM_OUT}/probe/probe_{{state}}_{{r}}_{{chunk}}.parquet",
                      state=STATES, r=ATOM_REPLICAS, chunk=ATOM_CHUNKS),
        infos=expand(f"{ATOM_OUT}/glass/glass_{{r}}.json", r=ATOM_REPLICAS),
    output:
        macro=f"{ATOM_OUT}/tables/macro.parquet",
        steps=f"{ATOM_OUT}/tables/macro_steps.parquet",
        probe=f"{ATOM_OUT}/tables/probe.parquet",
        yaml=f"{ATOM_OUT}/tables/reference.yaml",
    params:
        cfg=lambda w: shlex.quote(json.dumps(ATOM, sort_keys=True)),
        d_threshold=_atom("d_threshold", 0.05),
        outdir=f"{ATOM_OUT}/tables",
        bench=lambda w: " ".join(
            [f"{ATOM_OUT}/benchmarks/{k}_{r}.tsv" for k in ("prepare", "shear") for r in ATOM_REPLICAS]
            + [f"{ATOM_OUT}/benchmarks/probe_{s}_{r}_{c}.tsv" for s in STATES
               for r in ATOM_REPLICAS for c in ATOM_CHUNKS]),
        # a constant (a params change reruns the rule): the config itself is recorded in full
        command=shlex.quote("snakemake (workflow/rules/reference.smk, standalone with -s or included by "
                            "the Snakefile) with the reference.atomistic config recorded in provenance.config"),
    threads: 1
    resources:
        mem_mb=1000, runtime=10,
    log: f"{ATOM_OUT}/logs/tables.log"
    benchmark: f"{ATOM_OUT}/benchmarks/tables.tsv"
    shell:
        "epcal reference tables --steps {input.steps} --probes {input.probes} --infos {input.infos} "
        "--bauschinger {input.bauschinger} "
        "--config {params.cfg} --d-threshold {params.d_threshold} --command {params.command} "
        "--wall-times {params.bench} --out {params.outdir} > {log} 2>&1"


rule ref_check:
    """Validate the reference directory the calibration will read (reference.tables.path)."""
    input:
        rules.ref_tables.output,
    output:
        touch(f"{ATOM_OUT}/tables/.checked"),
    log: f"{ATOM_OUT}/logs/check.log"
    shell:
        "epcal reference check {ATOM_OUT}/tables > {log} 2>&1"
