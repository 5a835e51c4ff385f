# The EPM lattices of the run (appendix A.2, Table 1), printed at start-up: L_EP, N, the element
# side the lattice really has and n(R) of the loss radius, with the rule that set them.  The
# optimum table records the same (columns L_EP, N, l_lattice, n, lattice_rule).


def lattice_report():
    """One line per l of the config (the main process only; jobs re-parse the Snakefile)."""
    if not workflow.is_main_process:
        return
    sys.path.insert(0, str(BASE / "src"))
    from epcal.params import model_params, resolve_model
    from epcal.params import lattice_rule

    meta = {}
    if config["reference"]["source"] == "tables":
        f = Path(ref_dir()) / "reference.yaml"
        if f.exists():
            meta = yaml.safe_load(f.read_text()) or {}
    model = resolve_model(config["model"], meta)
    R = config["losses"]["R"]
    for l in config["l"]:
        p = model_params(l, 2.0, 1.0, 1.0, model)
        if R == "auto":
            patch = "n(R) from the reference's largest R (losses.R: auto, resolved by the jobs)"
        else:
            n = p.patch_size(float(R))
            patch = f"n(R = {R:g}) = {n} (R_EP = {p.l * n / math.sqrt(math.pi):.2f})"
        print(f"epcal: l = {fmt_l(l)}: L_EP = {p.L}, N = {p.N}, element side {p.l:.4f}, {patch} on the domain "
              f"{float(model['domain_length']):g} [{lattice_rule(l, float(model['domain_length']))}]", file=sys.stderr)


lattice_report()
