"""EPM parameters and the geometric rules of appendix A.2 (Table 1)."""
from __future__ import annotations

import dataclasses
import hashlib
import math

#: Side of the atomistic domain (paper section 2.1), in LJ lengths.
DOMAIN_LENGTH = 98.8045
#: Density of slip systems rho_s (section 3.2): N = rho_s l^2, rounded to a multiple of 4.
RHO_S = 0.8
#: Paper's measured moduli of its glass (section 4).
SHEAR_MODULUS = 13.2
BULK_MODULUS = 59.0

#: Table 1 of the paper: l -> (L_EP, N, n(R=30)), the authority at the paper's domain.
TABLE1 = {3.5: (29, 8, 15), 4.4: (23, 16, 12), 6.6: (15, 36, 8),
          8.8: (11, 64, 6), 10.5: (9, 92, 5), 13.2: (8, 144, 4)}
#: Table 1 by lattice size: L_EP -> n(R = 30)
_TABLE1_N30 = {L: n30 for (L, _, n30) in TABLE1.values()}

#: the rule for any other (domain, l) than Table 1's, stated in every output that uses it
RULE_OTHER = "L_EP = round(domain_length / l), N = rho_s l^2 to the nearest multiple of 4 (>= 4)"
RULE_TABLE1 = "Table 1 of the paper (domain_length = 98.8045)"


def _paper_domain(domain_length: float) -> bool:
    return abs(float(domain_length) - DOMAIN_LENGTH) < 1e-6 * DOMAIN_LENGTH


def _table1_row(l: float, domain_length: float):
    if not _paper_domain(domain_length):
        return None
    for lt, row in TABLE1.items():
        if abs(float(l) - lt) < 1e-9:
            return row
    return None


def lattice_rule(l: float, domain_length: float = DOMAIN_LENGTH) -> str:
    """Which rule sets L_EP and N for element length l on this domain (A.2)."""
    return RULE_TABLE1 if _table1_row(l, domain_length) else RULE_OTHER


def lattice_size(l: float, domain_length: float = DOMAIN_LENGTH) -> int:
    """L_EP: Table 1 at the paper's domain, else round(domain_length / l) (A.2)."""
    row = _table1_row(l, domain_length)
    return row[0] if row else max(1, int(round(domain_length / l)))


def slip_systems(l: float, rho_s: float = RHO_S, domain_length: float = DOMAIN_LENGTH) -> int:
    """N: Table 1 at the paper's domain, else rho_s l^2 rounded to the closest multiple of 4, at least 4 (A.2)."""
    row = _table1_row(l, domain_length) if rho_s == RHO_S else None
    return row[1] if row else max(4, 4 * int(round(rho_s * l * l / 4.0)))


def element_side(l: float, domain_length: float = DOMAIN_LENGTH) -> float:
    """The side the lattice really has, domain_length / L_EP (used wherever the formulas need l)."""
    return float(domain_length) / lattice_size(l, domain_length)


def patch_size(R: float, l: float, L: int | None = None) -> int:
    """Patch side n of effective radius R = l n / sqrt(pi) (section 3.5), l the lattice's element side.

    On a Table 1 lattice (L_EP = L and L l = the paper's domain), n(R = 30) is Table 1's; otherwise
    n is the side whose radius is closest to R.
    """
    if L is not None and abs(float(R) - 30.0) < 1e-9 and L in _TABLE1_N30 and _paper_domain(L * l):
        return _TABLE1_N30[L]
    return max(1, int(round(R * math.sqrt(math.pi) / l)))


def patch_radius(n: int, l: float) -> float:
    """Effective radius R = l n / sqrt(pi) of an n x n patch (section 3.5)."""
    return l * n / math.sqrt(math.pi)


#: smallest accepted Weibull shape: keeps (-ln u)^(1/k) inside double range for every u (epcal.vecmath)
K_MIN = 0.1


@dataclasses.dataclass(frozen=True)
class EPMParams:
    """Parameters of one EPM (section 3).

    L: elements per side (L_EP); l: element side of the lattice (LJ length; domain / L_EP
    for a lattice made by :meth:`for_element_length`); N: slip systems per
    element; k, lam: Weibull shape and scale of slip thresholds (Eq. 5); chi:
    exponent of the slip amplitude distribution (Eq. 7); G, B: shear and 2D bulk
    moduli.
    """

    L: int
    l: float
    N: int
    k: float
    lam: float
    chi: float
    G: float = SHEAR_MODULUS
    B: float = BULK_MODULUS

    @classmethod
    def for_element_length(cls, l: float, k: float, lam: float, chi: float, *,
                           G: float = SHEAR_MODULUS, B: float = BULK_MODULUS,
                           domain_length: float = DOMAIN_LENGTH, rho_s: float = RHO_S,
                           N: int | None = None) -> "EPMParams":
        """The lattice of nominal element length l on the domain: L_EP and N from Table 1 at the
        paper's domain (else :data:`RULE_OTHER`), element side domain_length / L_EP (A.2)."""
        return cls(L=lattice_size(l, domain_length), l=element_side(l, domain_length),
                   N=slip_systems(l, rho_s, domain_length) if N is None else int(N),
                   k=float(k), lam=float(lam), chi=float(chi), G=float(G), B=float(B)).validate()

    def validate(self) -> "EPMParams":
        """Raise ValueError naming the first bad parameter; return self."""
        checks = [
            ("L (--size)", self.L, isinstance(self.L, int) and self.L >= 2, "an integer >= 2"),
            ("l", self.l, self.l > 0 and math.isfinite(self.l), "a positive element length"),
            ("N (--slip-systems)", self.N, isinstance(self.N, int) and self.N >= 4 and self.N % 4 == 0,
             "a positive multiple of 4 (groups theta, theta+pi/2, theta+pi/4, theta+3pi/4)"),
            ("k", self.k, self.k >= K_MIN and math.isfinite(self.k),
             f"a Weibull shape >= {K_MIN} (below, the thresholds would span more than 300 decades)"),
            ("lam", self.lam, self.lam > 0 and math.isfinite(self.lam), "a positive Weibull scale"),
            ("chi", self.chi, self.chi > 0 and math.isfinite(self.chi), "a positive amplitude exponent"),
            ("G (--shear-modulus)", self.G, self.G > 0, "a positive shear modulus"),
            ("B (--bulk-modulus)", self.B, self.B > self.G / 2 if self.G > 0 else False,
             "a 2D bulk modulus > G/2 (positive-definite elasticity, 2D Poisson ratio < 1)"),
        ]
        for name, value, ok, expected in checks:
            if not ok:
                raise ValueError(f"parameter {name} = {value!r}: expected {expected}")
        return self

    def patch_size(self, R: float) -> int:
        n = patch_size(R, self.l, self.L)
        if n > self.L:
            raise ValueError(f"patch radius R = {R}: needs n = {n} elements per side, "
                             f"larger than the lattice L_EP = {self.L}")
        return n

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def digest(self) -> int:
        """Stable 64-bit digest of the parameters (used to derive random streams)."""
        text = repr(tuple((f.name, getattr(self, f.name)) for f in dataclasses.fields(self)))
        return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


# --------------------------------------------------------------- from the config's model slice
def model_params(l: float, k: float, lam: float, chi: float, model: dict):
    """EPMParams for element length l from the ``model`` config slice (G, B, domain_length, N)."""
    model = resolve_model(model)
    kw = dict(G=float(model["G"]), B=float(model["B"]), domain_length=float(model["domain_length"]))
    if model.get("N"):
        kw["N"] = int(model["N"])
    return EPMParams.for_element_length(float(l), k=float(k), lam=float(lam), chi=float(chi), **kw)


PAPER_MODEL = {"G": 13.2, "B": 59.0, "domain_length": 98.8045}
_FROM_REFERENCE = {"G": "shear_modulus", "B": "bulk_modulus", "domain_length": "domain_length"}


def resolve_model(model: dict | None, ref_meta: dict | None = None) -> dict:
    """Model settings with null (missing) G, B, domain_length taken from the reference's
    reference.yaml (so the EPM matches the reference's moduli and domain), else the paper's values."""
    out = dict(model or {})
    for key, ref_key in _FROM_REFERENCE.items():
        if out.get(key) is None:
            v = (ref_meta or {}).get(ref_key)
            out[key] = float(v) if v is not None else PAPER_MODEL[key]
    return out
