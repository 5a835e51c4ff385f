# SLURM start-up checks (preflight.py beside this file): with --executor slurm, placeholder
# account/partition, unknown partitions, jobs no node can hold and a status command this cluster
# cannot answer stop the run before any job is submitted.  Included by the Snakefile and by
# workflow/rules/reference.smk (run standalone for the atomistic reference).
import runpy as _runpy

_SLURM_PREFLIGHT = workflow.source_path("preflight.py")


onstart:
    if workflow.executor_plugin is not None and workflow.executor_plugin.name == "slurm":
        _runpy.run_path(_SLURM_PREFLIGHT)["check"](workflow)
