"""Crystallinity / demixing check of the quenched reference glasses.

Question: is the steady fall of the liquid's potential energy during the
t_equil = 2000 run (energy-plateau diagnostic failing for 3 of 4 samples) due
to (a) crystallization or demixing, or (b) ordinary aging/structural relaxation
of a homogeneous supercooled liquid?

For each quenched glass ``glass_<r>.npz`` (and any extra npz given on the
command line, e.g. a control quenched from a short liquid run) this script
measures, with numpy/scipy only:

* partial radial distribution functions g_SS, g_SL, g_LL: first-peak
  position and height, and first minimum.  Neighbours of an atom are the atoms
  within the first minimum of the corresponding *partial* g(r) (pair-specific
  cutoffs, averaged over the input glasses so that all samples use the same
  cutoffs).
* local bond-orientational order |psi_n(i)| = |(1/n_i) sum_j exp(i n theta_ij)|
  for n = 6 (triangular crystal; pure-species crystallites after demixing) and
  n = 5 / 10 (the pentagonal / decagonal local order of this Lancon-type
  mixture, sigma_SS = 2 sin(pi/10), sigma_LL = 2 sin(pi/5), whose ground state
  is a decagonal quasicrystal tiling: 5 L around an S, 10 S around an L).
  Per species: mean, and fraction above 0.7 and 0.8.
* largest cluster of ordered atoms (|psi_6| > 0.7; two ordered atoms are
  connected when they are neighbours), compared with the same statistic after
  randomly reassigning the ordered label over the atoms (null model).
* composition: local fraction x_S of small atoms among the neighbours of S
  and of L atoms vs the global x_S; and the variance of x_S in square cells of
  side ell divided by its binomial (ideal-mixing) value x(1-x)/n_cell.  A
  ratio >> 1 at large ell means demixing, < 1 means chemical short-range order.
* per-atom potential energy (the reference pair potential of
  epcal.reference.potential; its sum is checked against the json's quench
  energy) and the spread of its coarse-grained value over cells of side 10:
  a crystallite shows up as a compact low-energy region.

Usage:  python benchmarks/reference/crystallinity.py [extra.npz ...]
(an extra npz may have a json next to it with quench/moduli, as written by
prepare_glass-based control runs; a few seconds per glass).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))
from epcal.reference import potential as pot  # noqa: E402

SAMPLES = ROOT / "resources/reference/samples"
RMAX = 2.5  # pair-list range (= potential cutoff)
DR = 0.01
PAIRS = ((1, 1), (1, 2), (2, 2))
NAMES = {1: "S", 2: "L"}


def load(path):
    z = np.load(path)
    lx, ly, xy = (float(v) for v in z["box"])
    return np.asarray(z["pos"], float), np.asarray(z["types"], int), (lx, ly, xy)


def pair_list(pos, box, rmax=RMAX):
    """All ordered pairs (i, j, d_ij = r_j - r_i) with |d| < rmax; periodic triclinic box via ghosts."""
    lx, ly, xy = box
    h = np.array([[lx, xy], [0.0, ly]])
    frac = np.linalg.solve(h, pos.T).T % 1.0
    p0 = frac @ h.T
    imgs = [(a, b) for a in (-1, 0, 1) for b in (-1, 0, 1)]
    ghosts = np.concatenate([p0 + np.array([a, b]) @ h.T for a, b in imgs])
    t0, tg = cKDTree(p0), cKDTree(ghosts)
    m = t0.sparse_distance_matrix(tg, rmax, output_type="ndarray")
    i, jg = m["i"].astype(int), m["j"].astype(int)
    n = len(pos)
    j = jg % n
    keep = ~((i == j) & (jg // n == 4))  # image (0,0) is index 4
    i, jg, j = i[keep], jg[keep], j[keep]
    return i, j, ghosts[jg] - p0[i], p0


def partial_gr(i, j, d, types, area):
    r = np.hypot(d[:, 0], d[:, 1])
    edges = np.arange(0.0, RMAX + DR / 2, DR)
    rc = 0.5 * (edges[1:] + edges[:-1])
    out = {}
    for a, b in PAIRS:
        na, nb = (types == a).sum(), (types == b).sum()
        sel = (types[i] == a) & (types[j] == b)
        h, _ = np.histogram(r[sel], edges)
        out[(a, b)] = h / (na * nb / area * 2 * np.pi * rc * DR)
    return rc, out


def peak_and_min(rc, g):
    gs = np.convolve(g, np.ones(5) / 5, mode="same")
    ip = int(np.argmax(gs))
    w = (rc > rc[ip]) & (rc < rc[ip] + 0.9)
    im = np.flatnonzero(w)[np.argmin(gs[w])]
    return rc[ip], gs[ip], rc[im]


def psi(i, d, nb, n_sym, n_atoms):
    th = np.arctan2(d[:, 1], d[:, 0])
    z = np.bincount(i, np.cos(n_sym * th), n_atoms) + 1j * np.bincount(i, np.sin(n_sym * th), n_atoms)
    return z / np.maximum(nb, 1)


def largest_cluster(mask, i, j):
    sel = mask[i] & mask[j]
    n = len(mask)
    g = coo_matrix((np.ones(sel.sum()), (i[sel], j[sel])), shape=(n, n))
    _, lab = connected_components(g, directed=False)
    lab = lab[mask]
    return int(np.bincount(lab).max()) if lab.size else 0


def per_atom_energy(i, j, d, types):
    r = np.hypot(d[:, 0], d[:, 1])
    e = np.zeros(len(r))
    for (a, b), (s, eps) in pot.PAIRS.items():
        sel = ((types[i] == a) & (types[j] == b)) | ((types[i] == b) & (types[j] == a))
        e[sel] = pot.pair_energy_force(r[sel], s, eps)[0]
    return 0.5 * np.bincount(i, e, len(types))


def cell_stats(p0, box, values, ell):
    """Per-cell (n, sum of values) on a grid of ~ell x ell cells (fractional coordinates)."""
    lx, ly, _ = box
    nx, ny = max(1, round(lx / ell)), max(1, round(ly / ell))
    h = np.array([[lx, box[2]], [0.0, ly]])
    f = np.linalg.solve(h, p0.T).T % 1.0
    c = (np.minimum((f[:, 0] * nx).astype(int), nx - 1) * ny + np.minimum((f[:, 1] * ny).astype(int), ny - 1))
    return np.bincount(c, minlength=nx * ny), np.bincount(c, values, nx * ny)


def analyse(name, path, cut, rng, e_ref=None):
    pos, types, box = load(path)
    n = len(types)
    i, j, d, p0 = pair_list(pos, box)
    r = np.hypot(d[:, 0], d[:, 1])
    rcut = np.where(types[i] == types[j], np.where(types[i] == 1, cut[(1, 1)], cut[(2, 2)]), cut[(1, 2)])
    e_at = per_atom_energy(i, j, d, types)
    nbm = r < rcut
    i, j, d = i[nbm], j[nbm], d[nbm]
    nb = np.bincount(i, minlength=n)
    res = {"name": name, "e_per_atom": e_at.mean(), "e_ref": e_ref}
    zpsi = {k: psi(i, d, nb, k, n) for k in (5, 6, 10)}
    for k, z in zpsi.items():
        res[f"psi{k}"] = np.abs(z)
    p6 = res["psi6"]
    de = e_at.copy()  # energy relative to the species mean
    for a in (1, 2):
        de[types == a] -= e_at[types == a].mean()
    # coherent (domain) orientational order: |mean complex psi_n| in cells of side 10,
    # over its value after permuting psi_n among atoms of the same species (1 = no domains)
    res["coherence"] = {}
    for k in (6, 10):
        cn, cr = cell_stats(p0, box, zpsi[k].real, 10.0)
        _, ci = cell_stats(p0, box, zpsi[k].imag, 10.0)
        zp = zpsi[k].copy()
        for a in (1, 2):
            s = np.flatnonzero(types == a)
            zp[s] = zp[rng.permutation(s)]
        _, nr = cell_stats(p0, box, zp.real, 10.0)
        _, ni = cell_stats(p0, box, zp.imag, 10.0)
        ok = cn > 0
        res["coherence"][k] = (np.abs(cr + 1j * ci)[ok] / cn[ok]).mean() / (np.abs(nr + 1j * ni)[ok] / cn[ok]).mean()
    for a in (1, 2):
        m = types == a
        res[f"Z_{NAMES[a]}"] = nb[m].mean()
        res[f"psi6_{NAMES[a]}"] = (p6[m].mean(), (p6[m] > 0.7).mean(), (p6[m] > 0.8).mean())
    res["psi5_S"] = res["psi5"][types == 1].mean()
    res["psi10_L"] = res["psi10"][types == 2].mean()
    ordered = p6 > 0.7
    res["ordered_frac"] = ordered.mean()
    res["cluster"] = largest_cluster(ordered, i, j)
    res["cluster_null"] = np.mean([largest_cluster(rng.permutation(ordered), i, j) for _ in range(5)])
    # pentagonal-S / decagonal-L locally preferred motifs: S with 5 L and no S neighbours; L with >= 9 S
    nS = np.bincount(i, types[j] == 1, n)
    nL = nb - nS
    res["S_5L"] = ((nL[types == 1] == 5) & (nS[types == 1] == 0)).mean()
    res["L_ge9S"] = (nS[types == 2] >= 9).mean()
    # composition
    xs = (types == 1).mean()
    xloc = nS / np.maximum(nb, 1)
    res["xs"] = xs
    res["xloc_S"], res["xloc_L"] = xloc[types == 1].mean(), xloc[types == 2].mean()
    res["comp_var_ratio"] = {}
    for ell in (5.0, 10.0, 20.0):
        cn, cs = cell_stats(p0, box, (types == 1).astype(float), ell)
        ok = cn > 0
        x = cs[ok] / cn[ok]
        res["comp_var_ratio"][ell] = np.mean((x - xs) ** 2) / np.mean(xs * (1 - xs) / cn[ok])
    cn, ce = cell_stats(p0, box, e_at, 10.0)
    ecell = ce / np.maximum(cn, 1)
    res["ecell_std"], res["ecell_min"] = ecell.std(), ecell.min()
    res["de_ordered"] = de[ordered].mean() if ordered.any() else np.nan
    hexa = ordered & (nb == 6)
    res["hex_frac"] = hexa.mean()
    res["hex_cluster"] = largest_cluster(hexa, i, j)
    res["gr"] = partial_gr(*pair_list(pos, box)[:3], types, box[0] * box[1])
    return res


def main(extra):
    items = []
    for r in range(4):
        g = SAMPLES / f"{r}/glass/glass_{r}.npz"
        if g.exists():
            info = json.loads(g.with_suffix(".json").read_text())
            items.append((f"s{r}", g, info["quench"]["energy"] / info["n_atoms"],
                          info["equilibration"]["pe_drift_second_half"], info["moduli"]["G"]))
    for p in extra:
        p = Path(p)
        js = p.with_suffix(".json")
        e = G = drift = np.nan
        if js.exists():
            info = json.loads(js.read_text())
            e, G = info["quench"]["energy"] / 1e4, info["moduli"]["G"]
            drift = info.get("diagnostics", {}).get("pe_drift_second_half", np.nan)
        items.append((p.stem, p, e, drift, G))
    # common neighbour cutoffs: first minimum of the partial g(r), averaged over all inputs
    peaks = {}
    for name, path, *_ in items:
        pos, types, box = load(path)
        rc, gr = partial_gr(*pair_list(pos, box)[:3], types, box[0] * box[1])
        peaks[name] = {ab: peak_and_min(rc, gr[ab]) for ab in PAIRS}
    cut = {ab: float(np.mean([peaks[k][ab][2] for k in peaks])) for ab in PAIRS}
    print("neighbour cutoffs (first min of partial g):", {f"{NAMES[a]}{NAMES[b]}": round(c, 3) for (a, b), c in cut.items()})
    print("\npartial g(r) first peak r (height) per sample")
    for k, v in peaks.items():
        print(f"  {k:>14s} " + "  ".join(f"{NAMES[a]}{NAMES[b]} {v[(a, b)][0]:.3f} ({v[(a, b)][1]:.2f}) min {v[(a, b)][2]:.2f}"
                                        for a, b in PAIRS))
    rng = np.random.default_rng(0)
    rows = []
    for name, path, e, drift, G in items:
        res = analyse(name, path, cut, rng, e)
        res.update(drift=drift, G=G)
        rows.append(res)
    fmt = lambda t: f"{t[0]:.3f}/{t[1]:.3f}/{t[2]:.3f}"  # noqa: E731
    print("\nA. order (psi6 S, psi6 L: mean / frac>0.7 / frac>0.8; clus = largest cluster of |psi6|>0.7 atoms,"
          " null = same after shuffling the labels; hex = |psi6|>0.7 and Z = 6; dE_ord = energy of |psi6|>0.7 atoms"
          " above their species mean; coh6/coh10 = cell(10) orientational coherence over shuffled, 1 = none)")
    print(f"{'sample':>14s} {'psi6 S':>17s} {'psi6 L':>17s} {'clus':>5s} {'null':>5s} {'hex':>5s} {'hexcl':>5s} "
          f"{'dE_ord':>6s} {'coh6':>5s} {'coh10':>5s} {'psi5S':>5s} {'psi10L':>6s} {'Z_S':>5s} {'Z_L':>5s} {'S:5L':>5s}")
    for q in rows:
        print(f"{q['name']:>14s} {fmt(q['psi6_S']):>17s} {fmt(q['psi6_L']):>17s} {q['cluster']:5d} "
              f"{q['cluster_null']:5.1f} {q['hex_frac']:5.3f} {q['hex_cluster']:5d} {q['de_ordered']:6.3f} "
              f"{q['coherence'][6]:5.2f} {q['coherence'][10]:5.2f} {q['psi5_S']:5.3f} {q['psi10_L']:6.3f} "
              f"{q['Z_S']:5.2f} {q['Z_L']:5.2f} {q['S_5L']:5.3f}")
    print("\nB. composition and energy (xS|S, xS|L = mean fraction of S among the neighbours of S / L atoms;"
          " varN = cell(N) variance of x_S over binomial; e_IS = json quench energy/N, e_chk = recomputed;"
          " ecStd = std of cell(10) mean energy)")
    print(f"{'sample':>14s} {'drift':>7s} {'G':>6s} {'e_IS':>8s} {'e_chk':>8s} {'xS|S':>5s} {'xS|L':>5s} "
          f"{'var5':>5s} {'var10':>5s} {'var20':>5s} {'ecStd':>6s}")
    for q in rows:
        cv = q["comp_var_ratio"]
        print(f"{q['name']:>14s} {q['drift']:7.4f} {q['G']:6.2f} {q['e_ref']:8.4f} {q['e_per_atom']:8.4f} "
              f"{q['xloc_S']:5.3f} {q['xloc_L']:5.3f} {cv[5.0]:5.2f} {cv[10.0]:5.2f} {cv[20.0]:5.2f} "
              f"{q['ecell_std']:6.4f}")
    print("\nC. liquid energy trace (equilibration_<r>.parquet): window means of pe/atom, fit pe = a + b ln t"
          " over 50 <= t <= t_end, b ln 2 = second-half drift that law predicts")
    wins = [(50, 100), (100, 200), (200, 400), (400, 800), (800, 1200), (1200, 1600), (1600, 2001)]
    print(f"{'sample':>14s} " + " ".join(f"{f'[{a},{b})':>11s}" for a, b in wins)
          + f" {'b':>7s} {'resid':>6s} {'b ln2':>7s} {'drift':>7s}")
    for r in range(4):
        f = SAMPLES / f"{r}/glass/equilibration_{r}.parquet"
        if not f.exists():
            continue
        tr = pd.read_parquet(f)
        t, pe = tr["time"].to_numpy(), tr["pe_per_atom"].to_numpy()
        s50 = t >= 50
        b, a0 = np.polyfit(np.log(t[s50]), pe[s50], 1)
        resid = (pe[s50] - (a0 + b * np.log(t[s50]))).std()
        drift = next(q["drift"] for q in rows if q["name"] == f"s{r}")
        print(f"{'s' + str(r):>14s} " + " ".join(f"{pe[(t >= a) & (t < b_)].mean():11.4f}" for a, b_ in wins)
              + f" {b:7.4f} {resid:6.4f} {b * np.log(2):7.4f} {drift:7.4f}")
    print(f"\nglobal x_S = {rows[0]['xs']:.4f}")
    print("|psi6| histogram (all atoms, bins of 0.1):")
    for q in rows:
        h, _ = np.histogram(q["psi6"], np.linspace(0, 1, 11))
        print(f"  {q['name']:>14s} " + " ".join(f"{v / len(q['psi6']):.3f}" for v in h))
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
