"""The perception probe: its two measures by hand, its recording, and a run end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from training.dqn.affordances import AFFORDANCES
from training.dqn.config import DQNConfig
from training.evaluation import perception
from training.evaluation.perception import auc, make_env, r_squared, record


def test_auc_counts_the_pairs_a_positive_wins_and_ties_as_half():
    scores = np.array([0.9, 0.4, 0.4, 0.1])
    positive = np.array([True, True, False, False])
    # Pairs (positive, negative): 0.9>0.4, 0.9>0.1, 0.4=0.4 (half), 0.4>0.1 -> 3.5 of 4.
    assert auc(scores, positive) == 0.875
    assert auc(-scores, positive) == 0.125
    assert np.isnan(auc(scores, np.zeros(4, dtype=bool)))


def test_r_squared_is_one_for_a_perfect_guess_and_zero_for_the_mean():
    actual = np.array([1.0, 2.0, 3.0, 6.0])
    assert r_squared(actual, actual) == 1.0
    assert r_squared(np.full(4, actual.mean()), actual) == pytest.approx(0.0)
    assert np.isnan(r_squared(actual, np.ones(4)))


def test_each_window_ends_with_the_frame_its_targets_describe():
    cfg = DQNConfig(camera_width=40, camera_height=20, frames=3, frame_stride=2)
    windows, targets = record(cfg, 4_000_000, drives=1, seconds=2.0)
    env = make_env(cfg, 2.0)
    obs, _ = env.reset(seed=4_000_000)
    assert windows.shape == (len(targets), 3, 20, 40) and targets.shape[1] == len(AFFORDANCES)
    assert (windows[0] == obs[:, :, 0]).all()  # the first window: the first frame repeated
    assert len(targets) == 20  # a 2 s drive at 10 Hz, every state before the end
    env.close()


@pytest.mark.slow
def test_a_small_fit_scores_every_target(tmp_path, capsys):
    out = tmp_path / "p.json"
    argv = ["--width", "40", "--height", "20", "--fit-drives", "2", "--test-drives", "1", "--seconds", "3"]
    assert perception.main([*argv, "--epochs", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result["r2"]) == set(AFFORDANCES) and result["states"] == 30
    assert "closing AUC" in capsys.readouterr().out


def test_a_missing_or_corrupt_state_is_one_line(tmp_path, capsys):
    corrupt = tmp_path / "corrupt.train.safetensors"
    corrupt.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00not json")
    for state in (tmp_path / "missing.train.safetensors", corrupt):
        assert perception.main(["--state", str(state)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"perception: {state}: not a readable training state")
        assert len(err.splitlines()) == 1
