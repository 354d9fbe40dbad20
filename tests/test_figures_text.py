"""Figures and summaries say what the traces show: the words for a pulse train's w, and the
demo's G–V figure (Figure 5 style) drawn from the calibrations, not from fixed numbers."""

import numpy as np
import pytest

import ionkinetics as ik
from ionkinetics.experiments import describe_pulse_train_response, rises_with_every_pulse


@pytest.mark.parametrize(
    ("w_after", "w_before", "starts", "decay"),
    [
        # each pulse adds the same step: potentiation
        (np.linspace(0.2, 0.6, 8), np.r_[0.05, np.linspace(0.2, 0.6, 8)[:-1] - 0.01], "w rises pulse by pulse", False),
        # jumps to one level and decays to rest between pulses (the crown6 panels of the old demo)
        (np.full(8, 0.69), np.r_[0.001, np.full(7, 0.002)], "w reaches the same level", True),
        # rises over two pulses, then nothing more
        (np.r_[0.47, 0.52, np.full(6, 0.53)], np.r_[0.005, np.full(7, 0.15)], "w rises over the first 3 pulses", True),
        # every pulse adds something, but 90 % of the rise is in by pulse 5 of 10
        (0.4 - 0.3 * 0.5 ** np.arange(10.0), None, "w rises with every pulse but saturates", False),
        # falling
        (np.linspace(0.6, 0.3, 5), None, "w does not rise pulse by pulse", False),
    ],
)
def test_pulse_train_words_follow_the_trace(w_after, w_before, starts, decay):
    text = describe_pulse_train_response(w_after, w_before)
    assert text.startswith(starts), text
    assert ("of the way to rest" in text) == decay, text
    if "rises pulse by pulse" in text or "rises with every pulse" in text:
        assert rises_with_every_pulse(w_after)


def test_gv_figure_is_drawn_from_the_calibrations():
    """The G–V figure's C·e^{αV} line is the least-squares fit of the model at 0.1 V steps over the
    paper's voltage range for the system (its published G–V points; the one definition of α and C,
    ``calibrate.GV_FIT_DEFINITION``), the Laplace band brackets the model and widens where the data
    are few, and the published points come from the targets."""
    from ionkinetics._demo import gv_fit_range_v, plot_gv_curves
    from ionkinetics.calibrate import conductance_band as gv_band
    from ionkinetics.calibrate._roles import exponential_fit

    cal = ik.load_calibration("B3N:KCl@1.0+RbCl@0.5")
    lo, hi = gv_fit_range_v(cal)
    published = [t["v"] for t in cal.provenance["targets"] if t["kind"] == "conductance" and not t.get("assumed")]
    assert (lo, hi) == (min(published), max(published))
    fig = plot_gv_curves([cal])
    drawn = fig.gv_fits[cal.system_id]
    v_fit = np.arange(lo, hi + 1e-9, 0.1)
    np.testing.assert_allclose(drawn["fit_v"], v_fit, rtol=0, atol=1e-12)
    c_ps, alpha = exponential_fit(v_fit, ik.conductance(cal, v_fit))
    assert np.isclose(drawn["alpha_per_v"], alpha) and np.isclose(drawn["c_ps"], c_ps) and drawn["band"]
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any(f"α = {alpha:+.1f} V⁻¹" in t for t in legend)
    assert "published point (paper's text)" in legend
    assert not any("assumed point" in t for t in legend)  # this system has no assumed point: none listed
    assert fig.axes[0].get_legend().get_bbox_to_anchor().y1 < fig.axes[0].bbox.y0 + 1  # below the data
    # published points are drawn where the targets say
    points = {
        (round(float(x), 6), round(float(y), 6))
        for line in fig.axes[0].get_lines()
        if line.get_marker() == "o"
        for x, y in zip(*line.get_data(), strict=True)
    }
    for t in cal.provenance["targets"]:
        if t["kind"] == "conductance":
            assert (round(t["v"], 6), round(t["g_ps"], 6)) in points
    # the band brackets the model's own curve and has width
    v = np.linspace(0.05, 0.5, 10)
    band = gv_band(cal, v, n_samples=200)
    g = ik.conductance(cal, v)
    assert np.all(band[0] < band[1])
    assert np.mean((band[0] <= g) & (g <= band[1])) >= 0.8
    # a carrier-only calibration with no dopant still gets its band from its own covariance
    assert gv_band(ik.load_calibration("B3N:KCl@1.0"), v, n_samples=50).shape == (2, v.size)
