"""Parsers of CLI option values (``--n 1-8``, ``--alpha 0,90``, ``--snapshots quench,1.0``): a value
that does not parse is a one-line error naming the option and what was expected."""
from __future__ import annotations


def parse_snapshots(text, gamma_max: float):
    """--snapshots: 'quench' and/or strains in [0, gamma_max] (a later strain is never reached)."""
    if not text:
        return ()
    out = []
    for tok in text.split(","):
        tok = tok.strip()
        if tok == "quench":
            out.append(tok)
            continue
        try:
            g = float(tok)
        except ValueError:
            raise ValueError(f"--snapshots {text!r}: {tok!r} is neither 'quench' nor a strain") from None
        if not 0 <= g <= gamma_max:
            raise ValueError(f"--snapshots {text!r}: strain {g:g} is outside [0, --gamma-max {gamma_max:g}] "
                             "(the run never reaches it)")
        out.append(g)
    return tuple(out)


def int_list(text, key):
    """'8', '1-8' or '2,4,8' -> integers; an empty range (8-1) is an error naming ``key``."""
    try:
        out = []
        for tok in str(text).split(","):
            if "-" in tok.strip()[1:]:
                lo, hi = (int(v) for v in tok.split("-"))
                if hi < lo:
                    raise ValueError(f"{key} {text!r}: the range {tok.strip()} is empty (expected low-high with "
                                     "low <= high)")
                out += list(range(lo, hi + 1))
            else:
                out.append(int(tok))
        return out
    except ValueError as exc:
        if str(exc).startswith(key):
            raise
        raise ValueError(f"{key} {text!r}: expected integers like '8' or '1-8' or '2,4,8'") from None


def float_list(text, key):
    try:
        return [float(t) for t in str(text).split(",")]
    except ValueError:
        raise ValueError(f"{key} {text!r}: expected comma separated numbers") from None
