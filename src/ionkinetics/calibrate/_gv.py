"""G–V and w–V exponential fits with errors, the paper's functional roles, and the role map.

Fits (paper, section 2.4 and Figure 5): ``G = C·exp(α·ΔV)`` and ``w = w0·exp(β·ΔV)`` are straight
lines through ln y, fitted by weighted least squares. Per-point errors σ_y become σ_ln y = σ_y/y
(delta method) and weights 1/σ_ln y²; the covariance of (ln a, b) is (XᵀWX)⁻¹ ("absolute" errors:
the given σ are taken as true). Without per-point errors the fit is unweighted (the existing
:func:`exponential_fit` gives the estimate) and the covariance is s²·(XᵀX)⁻¹ with the residual
variance s² = RSS/(n − 2) (needs n ≥ 3). ``se_prefactor = a·se_ln_a``.

Roles (paper: "β > 1 V⁻¹ for voltage activation, β < −1 V⁻¹ for voltage inactivation, and
−1 V⁻¹ < β < 1 V⁻¹ for either the primary charge carrier or a passive ion, depending on whether
it contributes substantially to the total current"). The thresholds are strict: β = ±1 V⁻¹
exactly is *not* a controller (the existing :func:`classify_role` rule). The paper leaves
"substantially" unquantified; this module's explicit rule (our choice, overridable) is:
an ion with |β| ≤ 1 is a ``carrier`` when it carries at least ``CARRIER_MIN_CURRENT_FRACTION``
(10 %) of the total current, else ``passive``. A fraction exactly at the threshold counts as a
carrier.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import TypeVar

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from .. import species
from ._roles import ROLE_THRESHOLD_PER_V, classify_role, exponential_fit

__all__ = [
    "CARRIER_MIN_CURRENT_FRACTION",
    "ROLES",
    "ROLE_COLORS",
    "ExpFit",
    "GVFit",
    "WVFit",
    "classify_ion_role",
    "fit_exponential",
    "fit_gv",
    "fit_wv",
    "role_map_figure",
    "role_with_margin",
]

CARRIER_MIN_CURRENT_FRACTION = 0.1
ROLES = ("carrier", "passive", "voltage activator", "voltage inactivator")
# Okabe & Ito colours (ionkinetics._io.PALETTE), told apart with every common colour-vision
# deficiency, and a letter in every cell besides: never red against green
ROLE_COLORS = {
    "carrier": "#56B4E9",  # sky blue
    "passive": "#d9d9d9",  # light grey
    "voltage activator": "#E69F00",  # orange
    "voltage inactivator": "#0072B2",  # blue (letters drawn white on it)
}
NOT_GIVEN_COLOR = "#ffffff"
ROLE_ABBREV = {"carrier": "C", "passive": "P", "voltage activator": "A", "voltage inactivator": "I"}


@dataclasses.dataclass(frozen=True)
class ExpFit:
    """``y = prefactor·exp(rate_per_v·V)`` with standard errors and the (ln a, b) covariance.

    ``chi2``/``dof``: weighted residual sum of squares in ln y and its degrees of freedom (with
    absolute per-point errors chi2/dof ≈ 1 says the errors were right).
    """

    prefactor: float
    rate_per_v: float
    se_prefactor: float
    se_rate_per_v: float
    se_ln_prefactor: float
    cov_ln_prefactor_rate: tuple[tuple[float, float], tuple[float, float]]
    n_points: int
    chi2: float
    dof: int
    weighted: bool

    def predict(self, v_v) -> np.ndarray:
        """The fitted ``prefactor·exp(rate_per_v·V)`` at biases ``v_v`` (V), in the units of the fitted y."""
        return self.prefactor * np.exp(self.rate_per_v * np.asarray(v_v, dtype=float))


_Fit = TypeVar("_Fit", bound="ExpFit")


class GVFit(ExpFit):
    """``G = C·exp(α·ΔV)``: ``c_ps``, ``alpha_per_v`` and their errors."""

    @property
    def c_ps(self) -> float:
        """Fitted conductance at 0 V, C, in pS."""
        return self.prefactor

    @property
    def alpha_per_v(self) -> float:
        """Fitted exponent α of the G–V curve, per volt."""
        return self.rate_per_v

    @property
    def se_c_ps(self) -> float:
        """Standard error of ``c_ps``, in pS."""
        return self.se_prefactor

    @property
    def se_alpha_per_v(self) -> float:
        """Standard error of ``alpha_per_v``, per volt."""
        return self.se_rate_per_v


class WVFit(ExpFit):
    """``w = w0·exp(β·ΔV)``: ``w0``, ``beta_per_v`` and their errors."""

    @property
    def w0(self) -> float:
        """Fitted open fraction at 0 V, w0 (dimensionless)."""
        return self.prefactor

    @property
    def beta_per_v(self) -> float:
        """Fitted exponent β of the w–V curve, per volt."""
        return self.rate_per_v

    @property
    def se_w0(self) -> float:
        """Standard error of ``w0``."""
        return self.se_prefactor

    @property
    def se_beta_per_v(self) -> float:
        """Standard error of ``beta_per_v``, per volt."""
        return self.se_rate_per_v


def fit_exponential(v_v, y, y_err=None, *, cls: type[_Fit] = ExpFit) -> _Fit:
    """Weighted least squares of ln y on V (module notes); ``y_err`` per point (same units as y) or None."""
    v = np.asarray(v_v, dtype=float)
    yy = np.asarray(y, dtype=float)
    if v.ndim != 1 or v.shape != yy.shape:
        raise ValueError(f"v_v and y must be 1-D of one length; got shapes {v.shape}, {yy.shape}")
    if not (np.all(np.isfinite(v)) and np.all(np.isfinite(yy))):
        raise ValueError("v_v and y must be finite")
    if np.any(yy <= 0):
        raise ValueError(f"y must be > 0 everywhere (the fit is on ln y); got min {yy.min()!r}")
    if np.unique(v).size < 2:
        raise ValueError(f"v_v needs at least two distinct voltages; got {np.unique(v).tolist()}")
    x = np.stack([np.ones_like(v), v], axis=1)
    ln_y = np.log(yy)
    if y_err is None:
        if v.size < 3:
            raise ValueError("an unweighted fit needs at least three points to estimate its errors (or give y_err)")
        a, b = exponential_fit(v, yy)
        theta = np.array([math.log(a), b])
        resid = ln_y - x @ theta
        chi2 = float(resid @ resid)
        s2 = chi2 / (v.size - 2)
        cov = s2 * np.linalg.inv(x.T @ x)
        weighted = False
    else:
        err = np.broadcast_to(np.asarray(y_err, dtype=float), yy.shape)
        if not np.all(np.isfinite(err)) or np.any(err <= 0):
            raise ValueError("y_err must be finite and > 0 at every point")
        w = (yy / err) ** 2  # 1/σ_ln²
        xtw = x.T * w
        cov = np.linalg.inv(xtw @ x)
        theta = cov @ (xtw @ ln_y)
        resid = ln_y - x @ theta
        chi2 = float(np.sum(w * resid**2))
        weighted = True
    se_ln_a, se_b = np.sqrt(np.diag(cov))
    a = math.exp(theta[0])
    return cls(
        prefactor=a,
        rate_per_v=float(theta[1]),
        se_prefactor=float(a * se_ln_a),
        se_rate_per_v=float(se_b),
        se_ln_prefactor=float(se_ln_a),
        cov_ln_prefactor_rate=((float(cov[0, 0]), float(cov[0, 1])), (float(cov[1, 0]), float(cov[1, 1]))),
        n_points=int(v.size),
        chi2=chi2,
        dof=int(v.size - 2),
        weighted=weighted,
    )


def fit_gv(v_v, g_ps, g_err_ps=None) -> GVFit:
    """``G = C·exp(α·ΔV)`` from conductances (pS) at biases (V), optional per-point errors (pS)."""
    return fit_exponential(v_v, g_ps, g_err_ps, cls=GVFit)


def fit_wv(v_v, w, w_err=None) -> WVFit:
    """``w = w0·exp(β·ΔV)`` from conductance weights at biases (V), optional per-point errors."""
    return fit_exponential(v_v, w, w_err, cls=WVFit)


def classify_ion_role(
    beta_per_v: float, *, current_fraction: float, carrier_min_current_fraction: float = CARRIER_MIN_CURRENT_FRACTION
) -> str:
    """The paper's role from β (strict ±1 V⁻¹ thresholds) and, for |β| ≤ 1, the ion's share of the
    total current: ``carrier`` if ``current_fraction ≥ carrier_min_current_fraction``, else ``passive``."""
    if not (0.0 <= current_fraction <= 1.0):
        raise ValueError(f"current_fraction must be in [0, 1]; got {current_fraction!r}")
    if not (0.0 < carrier_min_current_fraction <= 1.0):
        raise ValueError(f"carrier_min_current_fraction must be in (0, 1]; got {carrier_min_current_fraction!r}")
    return classify_role(beta_per_v, has_dopant=False, conducts=current_fraction >= carrier_min_current_fraction)


def role_with_margin(fit: WVFit, *, current_fraction: float, **kwargs) -> tuple[str, float]:
    """Role of a w–V fit and how far β lies from the nearer threshold, in standard errors
    (positive: on the side the role says; small values mean the call is uncertain)."""
    role = classify_ion_role(fit.beta_per_v, current_fraction=current_fraction, **kwargs)
    b, se, t = fit.beta_per_v, fit.se_beta_per_v, ROLE_THRESHOLD_PER_V
    if role == "voltage activator":
        margin = (b - t) / se
    elif role == "voltage inactivator":
        margin = (-t - b) / se
    else:
        margin = min(t - b, b + t) / se
    return role, float(margin)


def role_map_figure(
    table: Mapping[str, Mapping[str, str]],
    *,
    pores: Sequence[str] | None = None,
    ions: Sequence[str] = species.CATIONS,
    title: str | None = "Functional roles",
) -> Figure:
    """A colour map of roles, pores (rows) × ions (columns), like the inset of the paper's Figure 5.

    Cells the table does not give are left white and marked "–". Uses an Agg canvas, no pyplot."""
    pores = list(table) if pores is None else list(pores)
    ions = list(ions)
    code = np.full((len(pores), len(ions)), -1, dtype=int)
    for i, pore in enumerate(pores):
        for j, ion in enumerate(ions):
            role = table.get(pore, {}).get(ion)
            if role is None:
                continue
            if role not in ROLES:
                raise ValueError(f"role of {ion} in {pore} must be one of {ROLES}; got {role!r}")
            code[i, j] = ROLES.index(role)
    cmap = ListedColormap([NOT_GIVEN_COLOR, *(ROLE_COLORS[r] for r in ROLES)])
    norm = BoundaryNorm(np.arange(-1.5, len(ROLES)), cmap.N)
    fig = Figure(figsize=(0.6 * len(ions) + 2.5, 0.5 * len(pores) + 1.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.imshow(code, cmap=cmap, norm=norm, aspect="equal")
    ax.set_xticks(range(len(ions)), ions, rotation=45)
    ax.set_yticks(range(len(pores)), pores)
    ax.set_xticks(np.arange(-0.5, len(ions)), minor=True)
    ax.set_yticks(np.arange(-0.5, len(pores)), minor=True)
    ax.grid(which="minor", color="k", linewidth=0.5)
    ax.tick_params(which="minor", length=0)
    for i in range(len(pores)):
        for j in range(len(ions)):
            dark = code[i, j] >= 0 and ROLES[code[i, j]] == "voltage inactivator"
            ax.text(
                j,
                i,
                ROLE_ABBREV.get(ROLES[code[i, j]], "") if code[i, j] >= 0 else "–",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if dark else "black",
            )
    handles = [Patch(facecolor=ROLE_COLORS[r], edgecolor="k", label=f"{ROLE_ABBREV[r]}: {r}") for r in ROLES]
    handles.append(Patch(facecolor=NOT_GIVEN_COLOR, edgecolor="k", label="–: not given"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7, frameon=False)
    if title:
        ax.set_title(title)
    return fig
