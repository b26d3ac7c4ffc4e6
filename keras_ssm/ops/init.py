"""Initial values of SSM parameters, computed once in float64 numpy at build time.

Nothing here runs inside a layer's `call()`; the layers turn these arrays into variables through
`keras_ssm.layers.base.ArrayInitializer` (exported as `keras_ssm.layers.ArrayInitializer`).
"""

import functools

import numpy as np

EIGENVALUE_INITS = ("inv", "lin", "real", "legs", "random")


def hippo_legs(N):
    """HiPPO-LegS state matrix and input vector.

    A[n, k] = -sqrt(2n+1) sqrt(2k+1) for n > k, -(n+1) for n = k, 0 for n < k;  B[n] = sqrt(2n+1).

    Returns:
        (A, B): float64 arrays of shapes (N, N) and (N,).
    """
    q = np.sqrt(2.0 * np.arange(N) + 1.0)
    A = -np.tril(np.outer(q, q), k=-1) - np.diag(np.arange(N) + 1.0)
    return A, q.copy()


def nplr_legs(N, rank=1):
    """Normal-plus-low-rank (NPLR) form of HiPPO-LegS, with conjugate pairs kept once.

    With P[n] = sqrt(n + 1/2), S = A + P P^T = -1/2 I + (skew-symmetric), so S = V diag(Lambda) V^* with
    V unitary. Keeping the N/2 eigenvalues with Im > 0 (their conjugates carry the same information
    for real inputs), the HiPPO matrix is A = V (Lambda - P~ P~^*) V^* with P~ = V^* P, B~ = V^* B.

    Args:
        N: state size (even, >= 2).
        rank: rank of the low-rank term. Rank 1 is the exact LegS correction; for rank 2 a second,
            zero column is appended (a trainable slot that starts inactive).

    Returns:
        (Lambda, P, B, V): complex128 arrays of shapes (N/2,), (rank, N/2), (N/2,), (N, N/2).
        Lambda is sorted by increasing imaginary part.
    """
    _check_state_size(N)
    if rank not in (1, 2):
        raise ValueError(f"`rank` must be 1 or 2, got {rank!r}.")
    A, B = hippo_legs(N)
    P = np.sqrt(np.arange(N) + 0.5)
    S = A + np.outer(P, P)
    skew = 0.5 * (S - S.T)
    # -i * skew is Hermitian, so eigh gives real w and unitary V with skew = V (i w) V^*.
    w, V = np.linalg.eigh(-1j * skew)
    keep = np.argsort(w)[N // 2 :]
    w, V = w[keep], V[:, keep]
    Lambda = np.mean(np.diag(S)) + 1j * w
    P_t = V.conj().T @ P
    B_t = V.conj().T @ B
    P_all = np.zeros((rank, N // 2), dtype=np.complex128)
    P_all[0] = P_t
    return Lambda, P_all, B_t, V


def initial_eigenvalues(init, n, num_channels=1, seed=None):
    """Continuous-time eigenvalues a_n of the diagonal state matrix, n = 0..N/2-1.

    | init   | a_n                                          |
    |--------|----------------------------------------------|
    | lin    | -1/2 + i pi n                                |
    | inv    | -1/2 + i (N/pi) (N/(2n+1) - 1)               |
    | real   | -(n+1)                                       |
    | legs   | eigenvalues of the normal part of HiPPO-LegS (real part -1/2, Im > 0) |
    | random | -1/2 + i U(0, pi N/2), drawn per channel     |

    Args:
        init: one of `EIGENVALUE_INITS`.
        n: state size N (even, >= 2); N/2 eigenvalues are returned (one of each conjugate pair).
        num_channels: H, the number of independent channels.
        seed: integer seed for "random".

    Returns:
        complex128 array of shape (num_channels, N/2).
    """
    _check_state_size(n)
    half = n // 2
    k = np.arange(half, dtype=np.float64)
    if init == "lin":
        a = -0.5 + 1j * np.pi * k
    elif init == "inv":
        a = -0.5 + 1j * (n / np.pi) * (n / (2 * k + 1) - 1)
    elif init == "real":
        a = -(k + 1) + 0j
    elif init == "legs":
        a = nplr_legs(n)[0]
    elif init == "random":
        rng = np.random.default_rng(seed)
        imag = rng.uniform(0.0, np.pi * n / 2, size=(num_channels, half))
        return -0.5 + 1j * np.sort(imag, axis=-1)
    else:
        raise ValueError(f"`init` must be one of {EIGENVALUE_INITS}, got {init!r}.")
    return np.tile(a[None, :], (num_channels, 1))


def _check_state_size(n):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2 or n % 2:
        raise ValueError(f"`n` (state size) must be an even integer >= 2, got {n!r}.")


# ---------------------------------------------------------------------------------------------
# Any eigenvalue set: user arrays, discrete eigenvalues given directly, named discrete families.

#: Named discrete-time families (eigenvalues given as lambda at dt = 1; see `discrete_family`).
DISCRETE_INITS = ("linear_magnitudes", "unity_rings", "memory")
#: The continuous families of the paper's first author's working code, as written there (`author_family`):
#: continuous log-eigenvalues, scaled by each channel's dt like "inv" or "lin".
AUTHOR_INITS = ("guan_linear", "guan_conjugate_linear")
#: Parameters of the discrete and the author's families and their defaults.
FAMILY_DEFAULTS = {
    "linear_magnitudes": {"rho": 0.99},
    "unity_rings": {"rho": float(np.exp(-0.5)), "p": 2},
    "memory": {"horizon": 1024},
    "guan_linear": {"rho": float(np.exp(-0.5))},
    "guan_conjugate_linear": {"rho": float(np.exp(-0.5)), "n_conjugate": 2},
}
DISCRETE_INIT_DEFAULTS = {name: FAMILY_DEFAULTS[name] for name in DISCRETE_INITS}
#: |lambda| at dt = 1 is at most exp(-MIN_DECAY): the layers keep Re a <= -MIN_DECAY (see layers.base).
MIN_DECAY = 1e-4
MAX_DISCRETE_MAGNITUDE = float(np.exp(-MIN_DECAY))


def linear_magnitudes(n, rho=0.99):
    """Real discrete eigenvalues with linearly spaced magnitudes: lambda_k = rho k / (N/2), k = 1..N/2.

    One of the two discrete families of the paper's first author's public working code (whether it is
    the paper's "lin" baseline is not known). Every lambda is real, so each stored mode is one real
    state dimension (MC <= N/2, not N).

    Returns:
        complex128 (N/2,) (imaginary parts 0), to be used at dt = 1.
    """
    _check_state_size(n)
    rho = _check_rho(rho)
    half = n // 2
    return (rho * np.arange(1, half + 1) / half).astype(np.complex128)


def unity_rings(n, rho=float(np.exp(-0.5)), p=2):
    """Roots of unity on p concentric rings of radii rho i / p, i = 1..p (discrete, dt = 1).

    A discrete reading of the first author's "conjugate_linear" (see `guan_conjugate_linear` for that family
    as written: continuous, scaled by dt, and with N/(2 n_conjugate) rings of n_conjugate roots each). Here p
    is the number of rings and the values are discrete eigenvalues used at dt = 1: each ring holds
    m = N/(2p) stored modes (one of each conjugate pair) at the angles 2 pi k / (2m), k = 0..m-1 (the roots
    of unity of order 2m in the upper half plane without -1; k = 0 is real, so each ring has one real mode).

    Args:
        n: state size N; N/2 must be divisible by p.
        rho: radius of the outer ring, 0 < rho < 1.
        p: number of rings, an integer >= 1.

    Returns:
        complex128 (N/2,), ring by ring from the innermost, to be used at dt = 1.
    """
    _check_state_size(n)
    rho = _check_rho(rho)
    if isinstance(p, bool) or not isinstance(p, (int, np.integer)) or p < 1:
        raise ValueError(f"`p` (number of rings) must be an integer >= 1, got {p!r}.")
    half = n // 2
    if half % p:
        raise ValueError(f"`p` must divide N/2 = {half} (each ring holds N/(2p) modes), got p={p}.")
    m = half // p
    angles = 2.0 * np.pi * np.arange(m) / (2 * m)
    radii = rho * np.arange(1, p + 1) / p
    return (radii[:, None] * np.exp(1j * angles)[None, :]).reshape(-1)


def _check_rho(rho):
    if isinstance(rho, bool) or not isinstance(rho, (int, float, np.floating)) or not 0 < rho <= MAX_DISCRETE_MAGNITUDE:
        raise ValueError(f"`rho` must be a number in (0, {MAX_DISCRETE_MAGNITUDE:.6f}] (|lambda| < 1 at dt = 1, "
                         f"Re a <= -{MIN_DECAY:g}), got {rho!r}.")
    return float(rho)


def guan_linear(n, rho=float(np.exp(-0.5))):
    """The first author's "linear" family, as written: a_k = log(rho k / (N/2)), k = 1..N/2 (all real).

    Continuous eigenvalues, scaled by each channel's dt (lambda = exp(dt a) with ZOH), so at dt = 1 the
    discrete magnitudes are rho k/(N/2), those of `linear_magnitudes`.
    Source: jingchuan0guan/ML_application, ``s4/src/models/sequence/ss/standalone/s4d.py``, ``A_eigvals``
    with ``eigvals_name="linear"``.

    Returns:
        complex128 (N/2,).
    """
    _check_state_size(n)
    rho = _check_rho(rho)
    half = n // 2
    return np.log(rho * np.arange(1, half + 1) / half).astype(np.complex128)


def guan_conjugate_linear(n, rho=float(np.exp(-0.5)), n_conjugate=2):
    """The first author's "conjugate_linear" family, as written: log(rho r_i w_k), the principal logarithm
    of rings of radii rho r_i, each holding the n_conjugate-th roots of unity over the full circle.

    With n = N/2 and m = n_conjugate: if m divides n, p = n/m rings of radii r_i = i/p, i = 1..p, each with
    w_k = exp(2 pi i k/m), k = 0..m-1; else (q = n mod m > 0) p = 1 + n//m, rings i = 2..p of the m-th
    roots, then one ring of the q-th roots of unity at radius 1. Ring by ring, k fastest. With m = 2 (the
    default) each ring holds a real mode log(rho r_i) and one at the Nyquist angle, log(rho r_i) + i pi.
    Continuous eigenvalues, scaled by each channel's dt like "inv" (lambda = exp(dt a) with ZOH). For m > 2
    a ring holds conjugate pairs (w and its conjugate), which this family keeps as separate modes, as the
    source does. Source: jingchuan0guan/ML_application, ``s4/src/models/sequence/ss/standalone/s4d.py``,
    ``A_eigvals`` with ``eigvals_name="conjugate_linear"`` (its kernel then stores Re a - 1e-4; ours keeps
    Re a as given).

    Args:
        n: state size N (N/2 stored modes).
        rho: radius of the outer ring, 0 < rho < 1.
        n_conjugate: roots of unity per ring, an integer in [1, N/2] (1: `guan_linear`).

    Returns:
        complex128 (N/2,).
    """
    _check_state_size(n)
    rho = _check_rho(rho)
    half = n // 2
    if (isinstance(n_conjugate, bool) or not isinstance(n_conjugate, (int, np.integer))
            or not 1 <= n_conjugate <= half):
        raise ValueError(f"`n_conjugate` (roots of unity per ring) must be an integer in [1, N/2 = {half}], "
                         f"got {n_conjugate!r}.")
    m, q = int(n_conjugate), half % int(n_conjugate)
    p = half // m if q == 0 else 1 + half // m
    radii = np.arange(1 if q == 0 else 2, p + 1) / p
    modes = (radii[:, None] * _roots_of_unity(m)[None, :]).reshape(-1)
    if q:
        modes = np.concatenate([modes, _roots_of_unity(q)])
    return np.log(rho * modes)


def _roots_of_unity(m):
    """exp(2 pi i k / m), k = 0..m-1."""
    return np.exp(2j * np.pi * np.arange(m) / m)


def author_family(name, n, **params):
    """The continuous eigenvalues (N/2,) of a family of `AUTHOR_INITS` with `params` (defaults: `FAMILY_DEFAULTS`)."""
    params = {**FAMILY_DEFAULTS[name], **params}
    return guan_linear(n, **params) if name == "guan_linear" else guan_conjugate_linear(n, **params)


def parse_init_name(init, other_forms="an array of eigenvalues or a DiscreteEigenvalues"):
    """Split a named init "name" or "name:key=value,key=value" into (name, params).

    The discrete and the author's families take parameters, e.g. "unity_rings:rho=0.99,p=4",
    "linear_magnitudes:rho=0.95" or "guan_conjugate_linear:n_conjugate=4"; the continuous names ("inv", ...)
    take none. Values are parsed as int when they look like one, else
    float. Unknown names, keys or values are ValueErrors naming the allowed ones; ``other_forms`` ends
    the unknown-name message with the other forms the caller accepts.
    """
    if not isinstance(init, str):
        raise ValueError(f"`init` must be a string, got {init!r}.")
    name, _, rest = init.partition(":")
    allowed = EIGENVALUE_INITS + DISCRETE_INITS + AUTHOR_INITS
    if name not in allowed:
        raise ValueError(f"`init` must be one of {allowed} (discrete families take parameters, e.g. "
                         f"'unity_rings:rho=0.99,p=4'), {other_forms}, got {init!r}.")
    params = {}
    if rest:
        if name not in FAMILY_DEFAULTS:
            raise ValueError(f"`init` {name!r} takes no parameters, got {init!r}.")
        for item in rest.split(","):
            key, eq, value = item.partition("=")
            key = key.strip()
            if not eq or key not in FAMILY_DEFAULTS[name]:
                raise ValueError(f"`init` {init!r}: parameters of {name!r} are "
                                 f"{tuple(FAMILY_DEFAULTS[name])} as key=value, got {item!r}.")
            try:
                params[key] = int(value) if value.strip().lstrip("-").isdigit() else float(value)
            except ValueError:
                raise ValueError(f"`init` {init!r}: {key} must be a number, got {value!r}.") from None
        if "rho" in params:
            _check_rho(params["rho"])
        if "p" in params and (not isinstance(params["p"], int) or params["p"] < 1):
            raise ValueError(f"`init` {init!r}: `p` (number of rings) must be an integer >= 1.")
        if "horizon" in params and (not isinstance(params["horizon"], int) or params["horizon"] < 1):
            raise ValueError(f"`init` {init!r}: `horizon` (lags the memory is designed for) must be an integer >= 1.")
        if "n_conjugate" in params and (not isinstance(params["n_conjugate"], int) or params["n_conjugate"] < 1):
            raise ValueError(f"`init` {init!r}: `n_conjugate` (roots of unity per ring) must be an integer >= 1.")
    return name, params


def discrete_family(name, n, **params):
    """The discrete eigenvalues (N/2,) of a named discrete family (`DISCRETE_INITS`) with `params`."""
    params = {**FAMILY_DEFAULTS[name], **params}
    if name == "linear_magnitudes":
        return linear_magnitudes(n, **params)
    if name == "memory":
        return memory_designed(n, **params)
    return unity_rings(n, **params)


def memory_designed(n, horizon=1024):
    """Discrete eigenvalues (N/2,) designed for the flattest memory function over lags 0..horizon-1.

    `keras_ssm.memory.design_eigenvalues(n, horizon, seed=0)` with |lambda| <= exp(-1e-4) (the layers'
    stability margin), used at dt = 1; every channel of a layer gets the same set. The design takes
    seconds, so it is computed once per (n, horizon) in a process and copied.
    """
    _check_state_size(n)
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise ValueError(f"`horizon` must be an integer >= 1, got {horizon!r}.")
    return _memory_design_cache(int(n), int(horizon)).copy()


@functools.lru_cache(maxsize=32)
def _memory_design_cache(n, horizon):
    # Imported here: the design is analysis code (scipy) that most uses of the inits never need.
    from keras_ssm.memory.design import design_eigenvalues

    return design_eigenvalues(n, horizon, seed=0, max_magnitude=MAX_DISCRETE_MAGNITUDE).eigenvalues


def continuous_from_discrete(lam, discretization="zoh"):
    """Continuous eigenvalues a that the layer's discretization maps to `lam` at dt = 1.

    ZOH: lambda = exp(a)  ->  a = log(lambda) (principal branch; a negative real lambda gets Im a = pi).
    Bilinear: lambda = (1 + a/2) / (1 - a/2)  ->  a = 2 (lambda - 1) / (lambda + 1).
    |lambda| < 1 maps to Re a < 0 for both.

    Args:
        lam: complex array of discrete eigenvalues, 0 < |lambda| < 1 (ZOH) or |lambda| < 1 (bilinear).
        discretization: "zoh" or "bilinear".

    Returns:
        complex128 array of the same shape.
    """
    from keras_ssm.ops.discrete import check_discretization

    check_discretization(discretization)
    lam = np.asarray(lam, dtype=np.complex128)
    if discretization == "zoh":
        return np.log(lam)
    return 2.0 * (lam - 1.0) / (lam + 1.0)


class DiscreteEigenvalues:
    """Discrete eigenvalues lambda given directly, for `init=` of S4D and S4 (used at dt = 1).

    The layer sets log_dt = 0 (dt = 1, whatever dt_min / dt_max say) and stores
    a = `continuous_from_discrete(lambda, discretization)`, so its discretization gives back lambda
    (to float32 round-off of the stored parameters). If dt trains, it starts at 1.

    Args:
        values: complex array (N/2,) (the same for every channel) or (H, N/2), one of each conjugate
            pair, 0 < |lambda| <= exp(-1e-4). A real lambda is one real state dimension.
    """

    def __init__(self, values):
        self.values = _as_complex_array(values, "DiscreteEigenvalues values")

    def __eq__(self, other):
        return isinstance(other, DiscreteEigenvalues) and np.array_equal(self.values, other.values)

    def __repr__(self):
        return f"DiscreteEigenvalues(shape={self.values.shape})"


def _as_complex_array(values, what):
    try:
        array = np.asarray(values, dtype=np.complex128)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be an array of complex numbers, got {type(values).__name__}.") from None
    if array.ndim not in (1, 2) or array.size == 0:
        raise ValueError(f"{what} must have shape (N/2,) or (H, N/2), got shape {array.shape}.")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what} must be finite (no NaN or inf).")
    return array


def init_to_config(init):
    """JSON-ready form of an init: the string itself, or {"kind", "real", "imag"} for arrays."""
    if isinstance(init, str):
        return init
    kind = "discrete" if isinstance(init, DiscreteEigenvalues) else "continuous"
    values = init.values if isinstance(init, DiscreteEigenvalues) else init
    return {"kind": kind, "real": values.real.tolist(), "imag": values.imag.tolist()}


def _read_init_file(path):
    try:
        return np.load(path)
    except OSError as err:
        raise ValueError(f"`init` file {path!r} could not be read: {err}") from None


def check_init_string(init):
    """Validate an `init` given as text (a config file, a command line, a search space) and return it.

    Accepted: a name of `EIGENVALUE_INITS + DISCRETE_INITS + AUTHOR_INITS`, families with parameters
    ("unity_rings:rho=0.99,p=4"), or a path to a readable .npy file of continuous eigenvalues. What depends
    on the state size n is checked by `check_eigenvalue_init` once n is known.
    """
    if isinstance(init, str) and init.endswith(".npy"):
        _read_init_file(init)
    else:
        parse_init_name(init, other_forms="or a path to a .npy file of continuous eigenvalues")
    return init


def check_eigenvalue_init(init, n, allowed_names=None, discretization="zoh"):
    """Validate an `init` argument of S4D / S4 and return its normal form.

    Accepted:
      * a name of `allowed_names` (default: `EIGENVALUE_INITS + DISCRETE_INITS + AUTHOR_INITS`), the discrete
        and the author's families with optional parameters ("unity_rings:rho=0.99,p=4",
        "guan_conjugate_linear:n_conjugate=4");
      * a complex array (N/2,) or (H, N/2) of continuous eigenvalues a, Re a <= -1e-4;
      * a `DiscreteEigenvalues` (|lambda| in (0, exp(-1e-4)]);
      * the dict that `init_to_config` writes (loading a saved layer), or a path to a .npy file of
        continuous eigenvalues (e.g. from a command line).

    One of each conjugate pair: an array that holds a complex eigenvalue and its conjugate in the same
    channel is an error (the layer adds every conjugate itself). A real eigenvalue (Im = 0) is one real
    state dimension. The (H, N/2) form is checked against the layer's H when it is built.

    Returns:
        a string, a complex128 ndarray (continuous) or a DiscreteEigenvalues.
    """
    allowed = EIGENVALUE_INITS + DISCRETE_INITS + AUTHOR_INITS if allowed_names is None else tuple(allowed_names)
    if isinstance(init, dict):
        if set(init) != {"kind", "real", "imag"} or init["kind"] not in ("continuous", "discrete"):
            raise ValueError(f"An `init` dict must be {{'kind': 'continuous'|'discrete', 'real': ..., "
                             f"'imag': ...}}, got keys {sorted(init)}.")
        values = np.asarray(init["real"], np.float64) + 1j * np.asarray(init["imag"], np.float64)
        init = DiscreteEigenvalues(values) if init["kind"] == "discrete" else values
    if isinstance(init, str) and init.endswith(".npy"):
        init = _read_init_file(init)
    if isinstance(init, str):
        name, params = parse_init_name(init)
        if name not in allowed:
            raise ValueError(f"`init` must be one of {allowed} for this layer, got {init!r}.")
        if name in DISCRETE_INITS and name != "memory":  # "memory" is designed (seconds) when the layer builds
            discrete_family(name, n, **params)  # checks rho, p against n
        if name in AUTHOR_INITS:
            author_family(name, n, **params)  # checks n_conjugate against n
        return init
    half = n // 2
    if isinstance(init, DiscreteEigenvalues):
        lam = init.values
        _check_mode_count(lam, half, "`init` (DiscreteEigenvalues)")
        mag = np.abs(lam)
        if np.any(mag >= 1.0):
            raise ValueError(f"`init` (DiscreteEigenvalues) must have |lambda| < 1 (stable), got max |lambda| = "
                             f"{mag.max():.6g}.")
        if np.any(mag > MAX_DISCRETE_MAGNITUDE) or (discretization == "zoh" and np.any(mag == 0)):
            raise ValueError(f"`init` (DiscreteEigenvalues) must have 0 < |lambda| <= exp(-{MIN_DECAY:g}) = "
                             f"{MAX_DISCRETE_MAGNITUDE:.6f} (the layers keep Re a <= -{MIN_DECAY:g}), got |lambda| "
                             f"in [{mag.min():.6g}, {mag.max():.6g}].")
        _check_conjugates(lam, "`init` (DiscreteEigenvalues)")
        return init
    a = _as_complex_array(init, "`init` (continuous eigenvalues)")
    _check_mode_count(a, half, "`init` (continuous eigenvalues)")
    if np.any(a.real > -MIN_DECAY):
        raise ValueError(f"`init` (continuous eigenvalues) must have Re a <= -{MIN_DECAY:g} (stable), got max "
                         f"Re a = {a.real.max():.6g}.")
    _check_conjugates(a, "`init` (continuous eigenvalues)")
    return a


def _check_mode_count(values, half, what):
    if values.shape[-1] != half:
        raise ValueError(f"{what} must have N/2 = {half} eigenvalues per channel (one of each conjugate pair), "
                         f"got shape {values.shape}.")


def _check_conjugates(values, what):
    rows = values.reshape(-1, values.shape[-1])
    for row in rows:
        complex_ = row[row.imag != 0]
        if complex_.size and np.any(np.isclose(complex_[:, None], np.conj(complex_)[None, :], rtol=0, atol=1e-12)):
            raise ValueError(f"{what} holds a complex eigenvalue and its conjugate: give one of each conjugate "
                             f"pair (the layer adds the conjugates itself).")


def resolve_eigenvalue_init(init, n, num_channels, discretization, seed=None):
    """Continuous eigenvalues (H, N/2) of a checked `init` (see `check_eigenvalue_init`).

    Returns:
        (a, discrete): complex128 (num_channels, N/2); `discrete` is True when the init was given as
        discrete eigenvalues (named discrete family or DiscreteEigenvalues), which the layer uses at
        dt = 1 (log_dt = 0).
    """
    if isinstance(init, str):
        name, params = parse_init_name(init)
        if name in DISCRETE_INITS:
            lam = discrete_family(name, n, **params)
            return np.tile(continuous_from_discrete(lam, discretization)[None], (num_channels, 1)), True
        if name in AUTHOR_INITS:
            return np.tile(author_family(name, n, **params)[None], (num_channels, 1)), False
        return initial_eigenvalues(name, n, num_channels=num_channels, seed=seed), False
    discrete = isinstance(init, DiscreteEigenvalues)
    values = init.values if discrete else init
    if values.ndim == 2 and values.shape[0] != num_channels:
        raise ValueError(f"`init` holds eigenvalues for {values.shape[0]} channels, but the layer has "
                         f"H = {num_channels} features; give shape (N/2,) or ({num_channels}, N/2).")
    values = np.broadcast_to(values, (num_channels, n // 2))
    a = continuous_from_discrete(values, discretization) if discrete else np.array(values)
    return a.astype(np.complex128), discrete


# ---------------------------------------------------------------------------------------------
# Partial freezing of the eigenvalues.

def check_frozen_modes(frozen_modes, n):
    """Validate a `frozen_modes` argument: None, a fraction in [0, 1], or a boolean mask (N/2,) / (H, N/2).

    Returns:
        None, a float, or a bool ndarray.
    """
    if frozen_modes is None:
        return None
    if isinstance(frozen_modes, dict):  # from get_config
        frozen_modes = frozen_modes.get("mask")
    if isinstance(frozen_modes, (int, float, np.integer, np.floating)) and not isinstance(frozen_modes, bool):
        value = float(frozen_modes)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"`frozen_modes` as a fraction must be in [0, 1], got {frozen_modes!r}.")
        return value
    mask = np.asarray(frozen_modes)
    if mask.dtype != np.bool_:
        raise ValueError(f"`frozen_modes` must be None, a fraction in [0, 1] or a boolean mask of shape (N/2,) or "
                         f"(H, N/2), got {frozen_modes!r}.")
    if mask.ndim not in (1, 2) or mask.shape[-1] != n // 2:
        raise ValueError(f"`frozen_modes` mask must have shape (N/2,) = ({n // 2},) or (H, {n // 2}), "
                         f"got shape {mask.shape}.")
    return mask


def frozen_mode_mask(frozen_modes, n, num_channels, seed=None):
    """The boolean (H, N/2) mask of frozen modes of a checked `frozen_modes`, or None when none is frozen.

    A fraction f freezes k = round(f N/2) modes of every channel, chosen uniformly at random per channel
    from numpy's default_rng(seed) (so the same seed freezes the same modes). A (N/2,) mask applies to
    every channel.
    """
    if frozen_modes is None:
        return None
    half = n // 2
    if isinstance(frozen_modes, float):
        k = int(round(frozen_modes * half))
        if k == 0:
            return None
        rng = np.random.default_rng(seed)
        mask = np.zeros((num_channels, half), dtype=bool)
        for h in range(num_channels):
            mask[h, rng.permutation(half)[:k]] = True
        return mask
    if frozen_modes.ndim == 2 and frozen_modes.shape[0] != num_channels:
        raise ValueError(f"`frozen_modes` mask has {frozen_modes.shape[0]} rows, but the layer has "
                         f"H = {num_channels} features; give shape (N/2,) or ({num_channels}, {half}).")
    mask = np.array(np.broadcast_to(frozen_modes, (num_channels, half)))
    return mask if mask.any() else None
