# epcal: calibration of a tensorial elasto-plastic model against a reference (paper section 4).
#
#   snakemake --profile workflow/profiles/default                   # laptop, config/config.yaml
#   snakemake --profile workflow/profiles/default --configfile config/paper.yaml
#   snakemake --profile workflow/profiles/slurm --configfile config/paper.yaml
#   snakemake --report results/report.html                          # after a run
#
# Every rule calls one `epcal` verb (src/epcal/cli/calibrate.py) and writes parquet under results/.
from pathlib import Path

# the default config, unless --configfile names another one (configs are complete, never merged)
if not workflow.overwrite_configfiles:

    configfile: f"{workflow.basedir}/config/config.yaml"

include: "workflow/rules/common.smk"

validate_config(config, workflow.config_settings.config)
# which reference, why, and the radii the rules use: printed, recorded in every artifact, checked
# against everything the rules read, before any job runs
REFERENCE = resolve_reference_now(config)

report: "workflow/report/workflow.rst"

# the kernel cache is shared by all jobs (atomic writes, safe under concurrency)
os.environ.setdefault("EPCAL_CACHE_DIR", str(Path("results/cache").resolve()))

# atomistic reference rules (owned by the reference engineer), only when that source is used
ATOMISTIC_REF_DIR = config["reference"].get("atomistic", {}).get("outdir", "results/reference/atomistic") + "/tables"
if config["reference"]["source"] == "atomistic" and (BASE / "workflow/rules/reference.smk").exists():
    include: "workflow/rules/reference.smk"

include: "workflow/rules/lattice.smk"

include: "workflow/rules/reference_data.smk"
include: "workflow/rules/sweep.smk"
include: "workflow/rules/optimum.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/emergent.smk"
include: "workflow/rules/variants.smk"
include: "workflow/rules/slip_systems.smk"
# --executor slurm: start-up checks before any submission (this is the workflow's onstart handler;
# a second `onstart:` would replace it)
include: "workflow/profiles/slurm/preflight.smk"

if config["emergent"]["enabled"]:
    FIGURES.append(f"results/figures/fig5.{FIG_EXT}")
if config["slip_systems"]["enabled"]:
    FIGURES.append(f"results/figures/fig7.{FIG_EXT}")
if config["variants"]["enabled"]:
    FIGURES.extend(VARIANT_FIGURES)

wildcard_constraints:
    l=r"[0-9]+(\.[0-9]+)?",
    k=r"[0-9]+\.[0-9][0-9]+",
    b=r"[0-9]+",
    L=r"[0-9]+",
    v=r"[A-I]",
    N=r"[0-9]+",

# on a cluster these run on the submit host: small tables and plotting only (the reference check and the
# figure data tables, which read the reference and the run ensembles, are cluster jobs)
localrules: all, select, collect_meso, fit, optimum_table, fig2, fig3, fig4, fig5, fig6, fig7, fig8, fig9, fig10, variants


rule all:
    input:
        "results/calibration/optimum.parquet",
        FIGURES,
    default_target: True


rule variants:
    """Calibrate the model variants of appendix A.8 and draw Figs. 6 and 10 (snakemake ... variants)."""
    input:
        VARIANT_FIGURES,
