"""The run folder's typed records (one reader, one writer each) and the synthetic test system."""

import json

import numpy as np
import pytest

from conftest import NSIGMA_MAX
from helpers import make_calibration
from ionkinetics.md import (
    RUN_RECORD_SCHEMA,
    RunAnalysis,
    RunSettings,
    SegmentAnalysis,
    analyze_run,
    read_run_analysis,
    read_run_record,
)
from ionkinetics.md.testsystems import write_synthetic_run

FRAME_NS = 0.05


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    cal = make_calibration(dopants=(("K+", "center", 2.0, 0.5, 0.5, 0.5, 0.0),))
    volts = np.concatenate([np.zeros(600), np.full(600, 0.3)])
    run = write_synthetic_run(
        tmp_path_factory.mktemp("run") / "r",
        cal.params,
        system_id=cal.system_id,
        carrier=cal.carrier,
        dopant="K+",
        volts=volts,
        frame_ns=FRAME_NS,
        grid=6,
        seed=5,
    )
    return run, analyze_run(run.run_dir, blockers=["K+"])


def test_run_record_reads_back_what_the_writers_wrote(synthetic):
    run, _ = synthetic
    rec = read_run_record(run.run_dir)
    assert rec.system_id == "crown6:NaCl@1.0+KCl@0.5" and rec.blockers == ("K+",)
    assert rec.system.n_pores == run.n_pores == 36
    assert rec.system.ion_species[:36] == ("K+",) * 36
    assert rec.progress.frames_done == run.volts.size and rec.progress.platform == "synthetic"
    assert isinstance(rec.settings, RunSettings) and rec.settings.frame_ps == FRAME_NS * 1000.0
    assert rec.settings.n_frames == run.volts.size
    for name in ("spec.json", "system.json"):
        assert json.loads((run.run_dir / name).read_text())["schema"] == RUN_RECORD_SCHEMA


def test_analysis_is_typed_and_recovers_the_published_rates(synthetic):
    run, raw = synthetic
    typed = read_run_analysis(run.run_dir, blockers=["K+"])
    assert typed is not None and isinstance(typed.segments[0], SegmentAnalysis)
    assert isinstance(raw, RunAnalysis)  # analyze_run hands back the typed record it wrote
    assert [s.v for s in typed.segments] == [s.v for s in raw.segments] == [0.0, 0.3]
    np.testing.assert_array_equal(typed.w, raw.w)
    # the analysis counts dwell events; their MLE n/T is the generating rate seen at the frame interval
    # (the generator flips a pore at most once per frame, with probability k/s·(1 − e^{−s·dt})), within
    # NSIGMA_MAX standard errors
    for seg in typed.segments:
        trap, escape = run.trap_rate_per_ns[seg.v], run.escape_rate_per_ns[seg.v]
        s = trap + escape
        per_frame = (1.0 - np.exp(-s * FRAME_NS)) / (s * FRAME_NS)
        for side, exact in (("trap", trap * per_frame), ("escape", escape * per_frame)):
            d = getattr(seg, side)
            assert d.n_events > 50, (side, seg.v)
            rate = d.n_events / d.exposure_ns
            assert abs(rate - exact) < NSIGMA_MAX * rate / np.sqrt(d.n_events), (side, seg.v, rate, exact)


def test_stale_or_foreign_analysis_is_not_reused(synthetic, tmp_path):
    run, raw = synthetic
    assert read_run_analysis(run.run_dir, blockers=["Na+"]) is None  # counted other blockers
    bad = tmp_path / "r"
    bad.mkdir()
    (bad / "analysis.json").write_text(json.dumps({**raw.raw, "schema": "ionkinetics.md-run-analysis/9"}))
    with pytest.raises(ValueError, match=r"schema must be 'ionkinetics.md-run-analysis/1'.*got 'ionkinetics.md-run-analysis/9'"):
        read_run_analysis(bad)
    with pytest.raises(FileNotFoundError, match=r"has no spec.json \(the run's spec\); is it a run directory\?"):
        read_run_record(bad)
