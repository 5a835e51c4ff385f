"""Vectorizable elementary functions for the slip-system renewal (numba, plain arrays).

Renewing the N slip systems of an element after each slip (section 3.3) draws N
Weibull thresholds tau_c = lam (-ln u)^(1/k) (Eq. 5): two logarithms and one
exponential each.  The C library's scalar functions cost ~5 ns per call and
cannot be vectorized by LLVM (numba's SVML path is not available with the PyPI
llvmlite), which made the renewal the largest cost of an AQS run.  The
functions below use only arithmetic and integer bit operations on arrays, so
LLVM vectorizes their loops (AVX2: four doubles at a time).

Accuracy (tested against numpy): ``vlog`` <= 2 ulp for positive normal
arguments, ``vexp`` <= 2 ulp on [-700, 700].  Results are bit-identical on every
x86-64 machine (no dependence on the libm version), which keeps seeded runs
reproducible across platforms.

Compiled with ``error_model="numpy"`` (no zero-division check, which would stop
LLVM from vectorizing the division).  All functions write into caller-provided output and integer work arrays (no
allocation), elementwise: ``out`` may be the same array as ``x``.
"""
from __future__ import annotations

import numpy as np
from numba import njit

LN2_HI = 6.93147180369123816490e-01   # upper bits of ln 2 (fdlibm split: LN2_HI * n exact)
LN2_LO = 1.90821492927058770002e-10   # ln 2 - LN2_HI
INV_LN2 = 1.44269504088896338700e+00
SQRT2 = 1.4142135623730951
MANT_MASK = 0x000FFFFFFFFFFFFF
ONE_BITS = 0x3FF0000000000000
#: 2^52 as a double: (bits | MAGIC_BITS) viewed as a double is 2^52 + bits for bits < 2^52
MAGIC_BITS = 0x4330000000000000
MAGIC = 4503599627370496.0
# minimax coefficients of (2 atanh(s) - 2 s)/s in z = s^2 (fdlibm e_log.c, Sun Microsystems 1993)
LG1 = 6.666666666666735130e-01
LG2 = 3.999999999940941908e-01
LG3 = 2.857142874366239149e-01
LG4 = 2.222219843214978396e-01
LG5 = 1.818357216161805012e-01
LG6 = 1.531383769920937332e-01
LG7 = 1.479819860511658591e-01
#: 1.5 * 2^52: adding it rounds a double of modest size to the nearest integer
SHIFTER = 6755399441055744.0


@njit(cache=True, error_model="numpy")
def vlog(x, out, ibuf, fbuf):
    """out[i] = ln x[i] for positive normal x (NaN/inf/zero/subnormal are not handled).

    x = m 2^e with m in [sqrt(1/2), sqrt(2)); ln m = 2 atanh(s), s = (m - 1)/(m + 1),
    |s| <= 0.1716, with the degree-14 minimax polynomial of fdlibm's e_log.c
    (error < 2^-58.45).
    ``ibuf`` (int64) and ``fbuf`` (float64) are work arrays of at least len(x).
    """
    n = x.shape[0]
    xb = x.view(np.uint64)
    fb = fbuf.view(np.uint64)
    ib = ibuf.view(np.uint64)
    for i in range(n):          # integer pass: mantissa in [1, 2) and biased exponent as a double
        b = xb[i]
        fb[i] = (b & np.uint64(MANT_MASK)) | np.uint64(ONE_BITS)
        ib[i] = (b >> np.uint64(52)) | np.uint64(MAGIC_BITS)
    eb = ibuf.view(np.float64)
    for i in range(n):          # float pass
        m = fbuf[i]
        e = eb[i] - (MAGIC + 1023.0)
        if m > SQRT2:
            m = 0.5 * m
            e = e + 1.0
        f = m - 1.0
        s = f / (2.0 + f)
        z = s * s
        w = z * z
        t1 = w * (LG2 + w * (LG4 + w * LG6))
        t2 = z * (LG1 + w * (LG3 + w * (LG5 + w * LG7)))
        hfsq = 0.5 * f * f
        # ln m = f - hfsq + s (hfsq + R), R = t1 + t2 ~ 2 atanh(s)/s - 2 (fdlibm's form)
        out[i] = e * LN2_HI + ((f - (hfsq - s * (hfsq + (t1 + t2)))) + e * LN2_LO)


@njit(cache=True, error_model="numpy")
def vexp(x, out, fbuf):
    """out[i] = exp x[i] for |x| <= 700.

    exp x = 2^n exp r with n = round(x / ln 2), |r| <= ln(2)/2, exp r by its Taylor
    series to r^13 (truncation < 2e-17 relative); 2^n is built from the bits of
    x / ln 2 + 1.5 * 2^52, whose low bits hold n.  ``fbuf`` (float64) is a work
    array of at least len(x).
    """
    nn = x.shape[0]
    for i in range(nn):
        t = x[i] * INV_LN2 + SHIFTER
        nf = t - SHIFTER
        r = (x[i] - nf * LN2_HI) - nf * LN2_LO
        p = 1.0 / 6227020800.0
        p = p * r + 1.0 / 479001600.0
        p = p * r + 1.0 / 39916800.0
        p = p * r + 1.0 / 3628800.0
        p = p * r + 1.0 / 362880.0
        p = p * r + 1.0 / 40320.0
        p = p * r + 1.0 / 5040.0
        p = p * r + 1.0 / 720.0
        p = p * r + 1.0 / 120.0
        p = p * r + 1.0 / 24.0
        p = p * r + 1.0 / 6.0
        p = p * r + 0.5
        p = p * r + 1.0
        out[i] = p * r + 1.0
        fbuf[i] = t
    tb = fbuf.view(np.int64)
    for i in range(nn):
        tb[i] = (tb[i] + 1023) << 52   # 2^n: the shifter's high bits are shifted out
    for i in range(nn):
        out[i] = out[i] * fbuf[i]


PIO2_1 = 1.57079632673412561417e+00    # first 33 bits of pi/2 (fdlibm): q * PIO2_1 exact for |q| < 2^20
PIO2_1T = 6.07710050650619224932e-11   # pi/2 - PIO2_1
TWO_OVER_PI = 6.36619772367581382433e-01


@njit(cache=True, error_model="numpy")
def vsincos(x, s_out, c_out):
    """s_out[i], c_out[i] = sin x[i], cos x[i] for |x| <= 3.9 (angles 2 theta in (-pi, pi]).

    x = q pi/2 + r with q = round(2x/pi) in {-2, ..., 2}, |r| <= pi/4 (Cody-Waite
    reduction, exact for these q); sin r and cos r by their Taylor series to r^17
    and r^16 (truncation < 5e-17), then rotated by the quadrant.
    """
    for i in range(x.shape[0]):
        t = x[i] * TWO_OVER_PI + SHIFTER
        q = t - SHIFTER
        r = (x[i] - q * PIO2_1) - q * PIO2_1T
        z = r * r
        sp = 1.0 / 355687428096000.0
        sp = -1.0 / 1307674368000.0 + z * sp
        sp = 1.0 / 6227020800.0 + z * sp
        sp = -1.0 / 39916800.0 + z * sp
        sp = 1.0 / 362880.0 + z * sp
        sp = -1.0 / 5040.0 + z * sp
        sp = 1.0 / 120.0 + z * sp
        sp = -1.0 / 6.0 + z * sp
        sr = r + r * z * sp
        cp = 1.0 / 20922789888000.0
        cp = -1.0 / 87178291200.0 + z * cp
        cp = 1.0 / 479001600.0 + z * cp
        cp = -1.0 / 3628800.0 + z * cp
        cp = 1.0 / 40320.0 + z * cp
        cp = -1.0 / 720.0 + z * cp
        cp = 1.0 / 24.0 + z * cp
        cr = 1.0 - 0.5 * z + z * z * cp
        aq = abs(q)
        # quadrant: q = +-1 swaps (sin, cos) -> (q cos, -q sin); q = +-2 negates both
        s_ = q * cr if aq == 1.0 else (-sr if aq == 2.0 else sr)
        c_ = -q * sr if aq == 1.0 else (-cr if aq == 2.0 else cr)
        s_out[i] = s_
        c_out[i] = c_
