"""``epcal reference collect | restore | assemble | pressure-sensitivity``: the verbs of the
paper-geometry campaign (per-sample pieces committed across sessions, assembled into the
reference tables) and of what is measured on a finished reference.
"""
from __future__ import annotations

from pathlib import Path


def register_verbs(vs) -> None:
    """Add the campaign verbs to the ``epcal reference`` sub-parsers ``vs``."""
    q = vs.add_parser("collect", help="copy a campaign's finished per-sample pieces and in-progress checkpoints "
                      "into SAMPLES/<replica>/ (to commit them)")
    q.add_argument("outdir", help="the campaign's reference.atomistic.outdir")
    q.add_argument("samples", help="per-sample directory, e.g. resources/reference/samples")
    q.add_argument("--replicas", type=int, nargs="*", default=None)
    q.set_defaults(func=cmd_collect)

    q = vs.add_parser("restore", help="copy SAMPLES/<replica>/ back into a campaign outdir (resume on a new machine)")
    q.add_argument("samples")
    q.add_argument("outdir")
    q.add_argument("--replicas", type=int, nargs="*", default=None)
    q.set_defaults(func=cmd_restore)

    q = vs.add_parser("assemble", help="the reference tables from the complete samples under SAMPLES")
    q.add_argument("samples")
    q.add_argument("--config", required=True, help="the campaign config (reference.atomistic: states, provenance)")
    q.add_argument("--out", required=True, help="reference directory")
    q.set_defaults(func=cmd_assemble)

    q = vs.add_parser("pressure-sensitivity", help="alpha_p of variant B measured on a reference (A.8.2)",
                      description="The slope of the local yield stress tau_c against the patch pressure "
                                  "p = -(sxx_i + syy_i)/2, pooled within orientations, with a bootstrap error over "
                                  "the samples (epcal.pressure_sensitivity).")
    q.add_argument("dir", help="reference directory (probe.parquet)")
    q.add_argument("--R", type=float, default=None, help="patch radius (default: the largest of the state's rows)")
    q.add_argument("--state", default=None, help="probed state (default: every state of the table)")
    q.set_defaults(func=cmd_pressure_sensitivity)


def _campaign_cfg(path) -> tuple[dict, list[str]]:
    """(reference.atomistic config, probed-state names) of a campaign config file."""
    import yaml

    try:
        cfg = yaml.safe_load(Path(path).read_text())["reference"]["atomistic"]
    except (OSError, KeyError, TypeError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: expected a config file with reference.atomistic ({exc})") from None
    gammas = cfg.get("stationary_gammas", [cfg["gamma_max"]])
    return cfg, ["quench"] + [f"stationary_g{float(g):g}" for g in gammas]


def cmd_collect(args) -> int:
    from epcal.reference.campaign import collect

    changed = collect(args.outdir, args.samples, args.replicas)
    print(f"{len(changed)} file(s) updated under {args.samples}")
    for p in changed:
        print(f"  {p}")
    return 0


def cmd_restore(args) -> int:
    from epcal.reference.campaign import restore

    written = restore(args.samples, args.outdir, args.replicas)
    print(f"{len(written)} file(s) restored into {args.outdir}")
    return 0


def cmd_assemble(args) -> int:
    from epcal.reference.assemble import assemble_samples

    cfg, states = _campaign_cfg(args.config)
    ref = assemble_samples(args.samples, cfg, args.out, states,
                           command=f"epcal reference assemble {args.samples} --config {args.config} --out {args.out}")
    samples = ", ".join(map(str, ref["provenance"]["seeds"]))
    print(f"reference written to {args.out}: {ref['n_samples']} samples ({samples}), "
          f"{ref['n_avalanches']} avalanches, {ref['n_probe_tests']} probe tests, "
          f"G={ref['shear_modulus']:.3f}, B={ref['bulk_modulus']:.3f}")
    return 0


def cmd_pressure_sensitivity(args) -> int:
    import pandas as pd

    from epcal.pressure_sensitivity import PAPER_ALPHA_P, pressure_sensitivity

    path = Path(args.dir) / "probe.parquet"
    if not path.exists():
        raise ValueError(f"{path}: no such file")
    probe = pd.read_parquet(path)
    states = [args.state] if args.state else sorted(probe["state"].astype(str).unique())
    for state in states:
        rows = probe[probe["state"].astype(str) == state]
        R = float(args.R) if args.R is not None else float(rows["R"].max())
        m = pressure_sensitivity(probe, R, state, source=str(path))
        print(f"{state:>12s} R = {R:g}: alpha_p = {m['alpha_p']:.4f} +- {m['alpha_p_err']:.4f} "
              f"({m['n_samples']} samples, {m['n_rows']} tests; patch p = {m['p_mean']:.3f}, std {m['p_std']:.3f}; "
              f"paper {PAPER_ALPHA_P})")
    return 0
