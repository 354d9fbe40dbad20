"""MD campaigns on Dask: stable task ids, skip/resume, bounded retries, and a worker killed mid-task."""

import json
import os
import signal
import threading
import time

import numpy as np
import pytest

from ionkinetics.campaign import CampaignError, load_campaign, parse_campaign, plan_rows, run_campaign
from ionkinetics.md._runner import load_frames

# Tiny real tasks on the Reference platform (deterministic, so a resumed run is bit-identical to
# an undisturbed one): a 3.2 × 2.8 × 4 nm B3N cell in KCl/RbCl, 12 frames of 2 steps each.
TINY = {
    "schema": "ionkinetics.campaign/1",
    "name": "tiny",
    "membrane": {"spacing_nm": 1.6, "cells": [2, 1], "box_z_nm": 4.0},
    "run": {"timestep_fs": 2.0, "frame_ps": 0.004, "chunk_frames": 3, "platform": "Reference", "minimize": False},
    "system": [{"id": "B3N:KCl@1.0+RbCl@0.5", "blockers": ["Rb+"]}],
    "sweep": {"biases_v": [0.5], "seeds": [1, 2], "lengths_ns": [4.8e-5], "protocol": "dc"},
}


def test_plan_gives_stable_ids_and_the_cost():
    a = parse_campaign(TINY)
    b = parse_campaign(json.loads(json.dumps(TINY)))
    assert [t.task_id for t in a.tasks] == [t.task_id for t in b.tasks]
    assert len(a.tasks) == 2 and len({t.task_id for t in a.tasks}) == 2
    assert a.simulated_ns == pytest.approx(2 * 4.8e-5)
    more = parse_campaign({**TINY, "sweep": {**TINY["sweep"], "seeds": [1, 2, 3]}})
    assert {t.task_id for t in a.tasks} < {t.task_id for t in more.tasks}  # adding a seed renames nothing
    longer = parse_campaign({**TINY, "run": {**TINY["run"], "chunk_frames": 4}})
    assert not {t.task_id for t in a.tasks} & {t.task_id for t in longer.tasks}  # other settings, other tasks


def test_shipped_campaign_specs_parse():
    from pathlib import Path

    specs = sorted(Path("md").glob("campaign-*.toml"))
    assert specs
    for path in specs:
        c = load_campaign(path)
        assert c.tasks and c.simulated_ns > 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"schema": "x"}, "field 'schema'"),
        ({"sweep": {**TINY["sweep"], "biases_v": []}}, "'sweep.biases_v' must be a non-empty list"),
        ({"sweep": {**TINY["sweep"], "seeds": [1, 1]}}, "must not repeat"),
        ({"sweep": {**TINY["sweep"], "protocol": "ramp"}}, "'sweep.protocol' must be 'step' or 'dc'"),
        ({"system": [{"id": "B3N:KCl@1.0", "blockers": ["Rb+"]}]}, "system[0].blockers"),
        ({"run": {**TINY["run"], "length_ns": 1.0}}, "unknown fields ['length_ns']"),
        ({"sweep": {**TINY["sweep"], "lengths_ns": [4.7e-5]}}, "whole number of frames"),
        ({"pmf": [{"system": "crown6:KCl@1.0", "ion": "Na+", "z_min_nm": 0, "z_max_nm": 1, "spacing_nm": 0.1}]}, "pmf[0].ion"),
    ],
)
def test_bad_specs_name_the_field(change, message):
    with pytest.raises(CampaignError, match=None) as info:
        parse_campaign({**TINY, **change})
    assert message in str(info.value)


def _results(out):
    return {p.stem: json.loads(p.read_text()) for p in sorted((out / "results").glob("*.json"))}


@pytest.fixture(scope="module")
def undisturbed(tmp_path_factory):
    out = tmp_path_factory.mktemp("undisturbed")
    report = run_campaign(parse_campaign(TINY), out_dir=out, n_workers=2)
    assert [r["status"] for r in report.rows] == ["done", "done"]
    return out


def test_a_rerun_skips_finished_tasks(undisturbed):
    before = {p: p.stat().st_mtime_ns for p in (undisturbed / "results").glob("*.json")}
    report = run_campaign(parse_campaign(TINY), out_dir=undisturbed)
    assert [r["status"] for r in report.rows] == ["skipped", "skipped"]
    assert {p: p.stat().st_mtime_ns for p in (undisturbed / "results").glob("*.json")} == before
    rows = plan_rows(parse_campaign(TINY), undisturbed)
    assert all(r["done"] for r in rows)


@pytest.mark.slow  # kills a Dask worker mid-task (14 s on idle cores): CI runs it (--runslow)
def test_a_worker_killed_mid_task_loses_nothing_and_changes_nothing(undisturbed, tmp_path):
    """One worker is SIGKILLed after its task committed a chunk; Dask reschedules the task, which
    resumes from its checkpoint. Every task's result exists exactly once and equals the
    undisturbed campaign's, frames bit for bit."""
    from distributed import Client, LocalCluster

    campaign = parse_campaign(TINY)
    killed = {}

    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=50) as cluster,
        Client(cluster) as client,
    ):

        def assassin():
            deadline = time.time() + 300
            while time.time() < deadline and not killed:
                for t in campaign.tasks:
                    prog = tmp_path / "tasks" / t.task_id / "progress.json"
                    try:
                        chunks = json.loads(prog.read_text())["chunks_done"]
                    except (OSError, ValueError, KeyError):
                        continue
                    if 1 <= chunks < 4:
                        key = f"ionkinetics-{t.task_id}"
                        pids = client.run(os.getpid)
                        for addr, keys in client.processing().items():
                            if key in keys and addr in pids:
                                os.kill(pids[addr], signal.SIGKILL)
                                killed[t.task_id] = chunks
                                return
                time.sleep(0.02)

        watcher = threading.Thread(target=assassin, daemon=True)
        watcher.start()
        report = run_campaign(campaign, out_dir=tmp_path, client=client)
        watcher.join(timeout=5)

    assert killed, "no task was caught mid-run (the test could not kill a worker)"
    assert [r["status"] for r in report.rows] == ["done", "done"]
    (task_id,) = killed
    assert next(r for r in report.rows if r["task_id"] == task_id)["resumed_from_frame"] > 0
    got, want = _results(tmp_path), _results(undisturbed)
    assert sorted(got) == sorted(want) == sorted(t.task_id for t in campaign.tasks)
    for tid in want:
        assert got[tid]["result"]["frames_sha256"] == want[tid]["result"]["frames_sha256"]
        assert got[tid]["result"]["segments"] == want[tid]["result"]["segments"]
        a, b = load_frames(tmp_path / "tasks" / tid), load_frames(undisturbed / "tasks" / tid)
        assert np.array_equal(a.positions_nm, b.positions_nm)
        assert np.array_equal(a.t_ns, np.sort(np.unique(a.t_ns)))  # every frame once, in order
        assert len(list((tmp_path / "tasks" / tid / "frames").glob("chunk_*.npz"))) == 4


def test_a_failing_task_is_retried_then_reported_and_the_others_finish(tmp_path):
    campaign = parse_campaign(TINY)
    bad = campaign.tasks[0].task_id
    (tmp_path / "tasks" / bad).mkdir(parents=True)
    (tmp_path / "tasks" / bad / "spec.json").write_text(json.dumps({"hash": "someone-elses-run"}))
    report = run_campaign(campaign, out_dir=tmp_path, n_workers=1, retries=1)
    status = {r["task_id"]: r for r in report.rows}
    assert status[bad]["status"] == "failed" and "another spec" in status[bad]["error"]
    assert status[campaign.tasks[1].task_id]["status"] == "done"
    assert sorted(_results(tmp_path)) == [campaign.tasks[1].task_id]
    saved = json.loads((tmp_path / "campaign.json").read_text())
    assert [t["status"] for t in saved["tasks"]] == ["failed", "done"]


def test_collect_calibrates_each_mixture_from_its_task_runs(tmp_path):
    """collect → calibrate_from_runs on the campaign's own task folders (synthetic runs stand in
    for finished MD here); a PMF entry whose windows are missing is listed, not run."""
    from helpers import make_calibration, write_synthetic_md_run
    from ionkinetics.calibrate import encounter_rate_per_ns_per_molar, escape_ceiling_per_ns
    from ionkinetics.campaign import collect_campaign

    spec = {
        "schema": "ionkinetics.campaign/1",
        "name": "collect",
        "run": {"frame_ps": 50.0, "chunk_frames": 100},
        "system": [{"id": "crown6:NaCl@1.0+KCl@0.5", "blockers": ["K+"]}],
        "sweep": {"biases_v": [0.25, 0.5], "seeds": [1], "lengths_ns": [80.0], "protocol": "step", "rest_ns": 20.0},
        "pmf": [{"system": "crown6:KCl@1.0", "ion": "K+", "z_min_nm": 0.0, "z_max_nm": 0.2, "spacing_nm": 0.1}],
    }
    campaign = parse_campaign(spec)
    truth = make_calibration(
        dopants=(("K+", "center", 0.4, 0.05, 0.5, 0.1, 0.0),),
        c_ps=100.0,
        alpha_per_v=-0.8,
        k_max=(encounter_rate_per_ns_per_molar("K+"), escape_ceiling_per_ns("K+")),
    )
    for seed, task in enumerate(t for t in campaign.tasks if t.kind == "md"):
        v = task.payload["protocol"]["v"]
        volts = np.concatenate([np.zeros(400), np.full(800, v), np.zeros(400)])
        write_synthetic_md_run(tmp_path / "tasks" / task.task_id, truth, volts, frame_ns=0.05, seed=seed)
        (tmp_path / "results").mkdir(exist_ok=True)
        (tmp_path / "results" / f"{task.task_id}.json").write_text(json.dumps(task.to_dict()))
    summary = collect_campaign(campaign, out_dir=tmp_path, n_bootstrap=0)
    assert len(summary["missing"]) == 3 and all(m.startswith("pmf-") for m in summary["missing"])
    assert summary["failed"] == [] and summary["pmfs"] == []
    assert [r["source"] for r in summary["comparison"]] == ["openmm-crown6-NaCl-1.0-KCl-0.5", "published"]
    (cal,) = summary["calibrations"]
    assert cal["runs"] == 2 and cal["controls"] == 0
    from ionkinetics import load_calibration

    loaded = load_calibration(cal["path"])
    assert loaded.system_id == "crown6:NaCl@1.0+KCl@0.5"
    assert len(loaded.provenance["md_runs"]) == 2
    # a mixture whose runs saw nothing is reported with the reason, and does not stop the others
    for seed, task in enumerate(t for t in campaign.tasks if t.kind == "md"):  # 2 ns, all at one bias
        write_synthetic_md_run(tmp_path / "tasks" / task.task_id, truth, np.full(40, 0.5), frame_ns=0.05, seed=9 + seed)
    again = collect_campaign(campaign, out_dir=tmp_path, n_bootstrap=0)
    assert again["calibrations"] == [] and len(again["failed"]) == 1
    assert "two or more biases" in again["failed"][0]["error"]


def test_plan_command_lists_every_task_and_the_cost():
    from typer.testing import CliRunner

    from ionkinetics.cli import app

    result = CliRunner().invoke(app, ["campaign", "plan", "md/campaign-headline.toml"])
    assert result.exit_code == 0, result.output
    c = load_campaign("md/campaign-headline.toml")
    n_md = sum(t.kind == "md" for t in c.tasks)
    assert n_md == 4 * 3 * 5
    assert f"{len(c.tasks)} tasks ({n_md} MD runs, {len(c.tasks) - n_md} PMF windows)" in " ".join(result.output.split())


# Issue 15, item 2: a one-worker campaign whose worker dies must recover or fail clearly, in
# bounded time (it used to wait for ever with no worker, no progress and no error).


def test_a_cluster_left_without_workers_fails_the_tasks_in_bounded_time(tmp_path):
    from distributed import Client, LocalCluster

    result = {}
    with (
        LocalCluster(n_workers=0, processes=False, dashboard_address=":0", silence_logs=50) as cluster,
        Client(cluster) as client,
    ):
        runner = threading.Thread(
            target=lambda: result.update(
                report=run_campaign(parse_campaign(TINY), out_dir=tmp_path, client=client, no_worker_timeout_s=2.0)
            ),
            daemon=True,
        )
        start = time.monotonic()
        runner.start()
        runner.join(timeout=60)
        assert not runner.is_alive(), "run_campaign still waiting after 60 s with no worker"
    assert time.monotonic() - start < 30
    rows = result["report"].rows
    assert [r["status"] for r in rows] == ["failed", "failed"]
    assert all(r["error"].startswith("NoWorker: the cluster had no worker for 2 s") for r in rows)
    saved = json.loads((tmp_path / "campaign.json").read_text())
    assert [t["status"] for t in saved["tasks"]] == ["failed", "failed"]
    with pytest.raises(ValueError, match=r"no_worker_timeout_s must be a number > 0 \(seconds\); got 0"):
        run_campaign(parse_campaign(TINY), out_dir=tmp_path, no_worker_timeout_s=0)


def _worker_processes():
    """This process's Dask worker processes (spawned by the LocalCluster's nannies)."""
    from pathlib import Path

    me, out = os.getpid(), []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                parent = int(Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[1])
                cmd = Path(f"/proc/{p}/cmdline").read_text()
            except (OSError, ValueError, IndexError):
                continue
            if parent == me and "spawn_main" in cmd:
                out.append(int(p))
    return out


@pytest.mark.slow  # ~20 s: a one-worker LocalCluster, its worker killed and restarted
@pytest.mark.parametrize("n_workers", [1, 2])
def test_a_campaign_whose_own_workers_are_killed_recovers(undisturbed, tmp_path, n_workers):
    """run_campaign's own LocalCluster (as `campaign run --workers N`): every worker process is
    SIGKILLed once a task has committed a chunk; the nannies restart them, the tasks resume, and
    the results equal the undisturbed campaign's."""
    campaign = parse_campaign(TINY)
    killed = []

    def assassin():
        deadline = time.time() + 120
        while time.time() < deadline and not killed:
            for t in campaign.tasks:
                try:
                    chunks = json.loads((tmp_path / "tasks" / t.task_id / "progress.json").read_text())["chunks_done"]
                except (OSError, ValueError, KeyError):
                    continue
                if 1 <= chunks < 4:
                    for pid in _worker_processes():
                        os.kill(pid, signal.SIGKILL)
                        killed.append(pid)
                    return
            time.sleep(0.02)

    watcher = threading.Thread(target=assassin, daemon=True)
    watcher.start()
    report = run_campaign(campaign, out_dir=tmp_path, n_workers=n_workers, no_worker_timeout_s=120)
    watcher.join(timeout=5)
    assert killed, "no worker was caught mid-task"
    assert [r["status"] for r in report.rows] == ["done", "done"]
    got, want = _results(tmp_path), _results(undisturbed)
    for tid in want:
        assert got[tid]["result"]["frames_sha256"] == want[tid]["result"]["frames_sha256"]
