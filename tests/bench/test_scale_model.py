"""The scale projection's arithmetic, checked against numbers worked out by hand, and one tiny measurement."""
from __future__ import annotations

import pytest
from securepipe.bench.scale import LinearCost, ScaleInputs, long_notes_table, measure, project, projections

# 1,000 rows per shard at 10 s each, 2 s to start any task; ingest 1 s + 1 ms/row, train 20 s + 10 ms/row.
INPUTS = ScaleInputs(
    rows_per_shard=1000, mask_shard_s=10.0, task_startup_s=2.0,
    serial={"ingest": LinearCost(1.0, 0.001), "train": LinearCost(20.0, 0.01)},
)


def test_wall_time_and_cost_worked_by_hand():
    result = project(INPUTS, rows=10_500, workers=4, worker_hour_usd=3.6)
    # 11 shards (the last partial) on 4 workers: 3 waves of (10 + 2) s.
    assert (result["shards"], result["waves"], result["mask_wall_s"]) == (11, 3, 36.0)
    # ingest 1 + 10.5 + 2 start-up; train 20 + 105 + 2.
    assert result["serial_stages_s"] == {"ingest": 13.5, "train": 127.0}
    assert result["serial_s"] == 140.5
    assert result["wall_s"] == 176.5
    # One worker: 140.5 + 11 x 12 = 272.5 s; serial share 140.5 / 272.5.
    assert result["speedup_vs_one_worker"] == round(272.5 / 176.5, 2) == 1.54
    share = 140.5 / 272.5
    assert result["serial_share_one_worker"] == round(share, 4)
    assert result["amdahl_bound"] == round(1 / (share + (1 - share) / 4), 2) == 1.57
    assert result["worker_hours_held"] == round(4 * 176.5 / 3600, 2)
    assert result["usd_held"] == round(4 * 176.5 / 1000, 2)  # 3.6 $/h = 0.001 $/s
    assert result["usd_busy"] == round(272.5 / 1000, 2)


def test_full_waves_reach_amdahls_bound_and_a_partial_wave_falls_short():
    full = project(INPUTS, rows=8000, workers=4)  # 8 shards: 2 full waves
    assert full["speedup_vs_one_worker"] == full["amdahl_bound"]
    partial = project(INPUTS, rows=9000, workers=4)  # 9 shards: the third wave runs one
    assert partial["speedup_vs_one_worker"] < partial["amdahl_bound"]


def test_more_workers_than_shards_leave_only_the_serial_part_and_one_wave():
    result = project(INPUTS, rows=3000, workers=128)
    assert result["waves"] == 1
    assert result["wall_s"] == result["serial_s"] + 12.0


def test_speedup_is_bounded_by_the_serial_share():
    small, large = project(INPUTS, 10_000_000, 8), project(INPUTS, 10_000_000, 128)
    assert small["speedup_vs_one_worker"] < large["speedup_vs_one_worker"] <= 1 / large["serial_share_one_worker"]


def test_the_grid_is_10m_and_100m_rows_on_8_32_and_128_workers():
    grid = [(p["rows"], p["workers"]) for p in projections(INPUTS)]
    assert grid == [(r, w) for r in (10_000_000, 100_000_000) for w in (8, 32, 128)]


@pytest.mark.parametrize(("rows", "workers"), [(0, 8), (10, 0)])
def test_nonsense_sizes_are_refused(rows, workers):
    with pytest.raises(ValueError):
        project(INPUTS, rows, workers)


def test_a_line_through_two_measurements():
    line = LinearCost.through(1000, 3.0, 5000, 11.0)
    assert line == LinearCost(1.0, 0.002)
    assert line.seconds(100_000) == pytest.approx(201.0)


def test_noise_that_would_give_a_negative_fixed_cost_falls_back_to_the_larger_measurement():
    # 0.2 s at 1,000 rows and 6 s at 10,000: the line would start below zero.
    assert LinearCost.through(1000, 0.2, 10_000, 6.0) == LinearCost(0.0, 6.0 / 10_000)
    # A smaller time on more rows (warm-up in the first run): no negative slope either.
    assert LinearCost.through(1000, 5.0, 2000, 4.0) == LinearCost(0.0, 4.0 / 2000)
    with pytest.raises(ValueError):
        LinearCost.through(2000, 1.0, 2000, 2.0)


def test_the_generated_notes_are_long_and_hold_the_rows_identifiers():
    frame = long_notes_table(30, note_chars=600, seed=3)
    assert len(frame) == 30
    assert frame["notes"].str.len().min() >= 600
    assert sum(name in note for name, note in zip(frame["name"], frame["notes"])) > 0


def test_a_tiny_measurement_runs_the_pipeline_stages(kms_env):
    inputs, measured = measure(rows=40, rows_per_shard=20, note_chars=300)
    assert measured["rows"] == [20, 40]
    assert len(measured["mask_shard_s"]) == 3  # one shard, then two
    assert inputs.mask_shard_s > 0 and inputs.task_startup_s > 0
    assert set(inputs.serial) == {"ingest", "finalize_masking"}


@pytest.mark.parametrize("argv", [["--rows", "100"], ["--rows", "20000", "--train-rows", "20000"]])
def test_the_command_refuses_sizes_it_cannot_fit_a_line_through(argv, capsys):
    from securepipe.cli import main

    assert main(["bench", "scale", *argv, "--json"]) == 2
    assert "must be" in capsys.readouterr().err
