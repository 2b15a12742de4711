"""Behaviour cloning: the network really learns, the extra views are labelled to steer back, runs repeat."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_runner import run_cli

from agent.checkpoint import load_checkpoint
from agent.expert import Expert
from agent.pilotnet import PilotNet
from sim.render.palette import Palette
from training.bc.augment import LookPool, displaced_pose, photometric_jitter, render_views, view_displacements
from training.bc.config import (
    EVAL_SEED_START,
    SEED_STRIDE,
    BCConfig,
    JitterConfig,
    LookConfig,
    ViewConfig,
    dagger_seeds,
    expert_seeds,
)
from training.bc.data import collect_expert_episode
from training.bc.train import train_bc
from training.bc.trainer import Trainer, evaluate_loss

LANE_KEEP = "camdrive/LaneKeep-v0"


@pytest.fixture
def driving_env(make_env):
    """LaneKeep-v0 after 3 s of expert driving on a training seed: a real mid-road state."""
    env = make_env(LANE_KEEP)
    env.reset(seed=3)
    expert = Expert()
    expert.reset(env)
    for _ in range(30):
        env.step(expert.act(None, {}))
    return env, expert


def expert_from(env, expert: Expert, delta_d: float, delta_yaw: float) -> float:
    """The expert's own steering after physically moving the car to the displaced pose."""
    w = env.unwrapped.world
    saved = (w.ego.x, w.ego.y, w.ego.yaw)
    w.place_ego(*displaced_pose(w, delta_d, delta_yaw))
    steer = expert.steering()
    w.place_ego(*saved)
    return steer


def test_views_steer_back_toward_the_lane_centre(driving_env):
    env, expert = driving_env
    w = env.unwrapped.world
    centre = float(w.road.lane_centre(expert.target_lane))
    deltas = np.array(
        [
            [0.3, 0.0],
            [0.8, 0.0],
            [-0.3, 0.0],
            [-0.8, 0.0],
            [0.0, math.radians(4)],
            [0.0, -math.radians(4)],
            [0.0, 0.0],
        ]
    )
    frames, labels = render_views(w, env.unwrapped.obs_type.renderer, centre, deltas)
    assert frames.shape == (len(deltas), 66, 200, 3) and frames.dtype == np.uint8
    base = labels[-1]
    small_left, big_left, small_right, big_right, turned_left, turned_right = labels[:-1] - base
    # Shifted or turned left -> steer right (positive), and the reverse; a bigger shift, a bigger correction.
    assert 0 < small_left < big_left
    assert 0 > small_right > big_right
    assert turned_left > 0 > turned_right
    assert labels[1] > 0 and labels[3] < 0
    # The label is what the expert itself would command from that pose (same sign, about the same size).
    for (dd, dyaw), label in zip(deltas, labels, strict=True):
        own = expert_from(env, expert, float(dd), float(dyaw))
        assert np.sign(own - base) == np.sign(label - base)
        assert abs(own - label) < 0.05 + 0.1 * abs(own)
    # The views really are different camera poses.
    assert np.abs(frames[1].astype(int) - frames[-1]).mean() > 1.0
    assert np.array_equal(frames[-1], env.unwrapped.observe())


def test_view_sampling_and_jitter_are_seeded_and_bounded():
    cfg = ViewConfig(max_shift_m=0.9, max_yaw_deg=6.0)
    a = view_displacements(cfg, np.random.default_rng(1), 500)
    assert np.array_equal(a, view_displacements(cfg, np.random.default_rng(1), 500))
    assert np.abs(a[:, 0]).max() <= 0.9 and np.abs(a[:, 1]).max() <= math.radians(6.0)
    x = torch.full((4, 66, 200, 3), 100, dtype=torch.uint8)
    j1 = photometric_jitter(x, torch.Generator().manual_seed(0))
    j2 = photometric_jitter(x, torch.Generator().manual_seed(0))
    assert torch.equal(j1, j2) and j1.min() >= 0 and j1.max() <= 255
    assert not torch.allclose(j1[0], j1[1])
    # Colour mixing and saturation keep greys grey (before the per-channel gain and offset).
    grey_only = JitterConfig(brightness=0, contrast=0, colour=0, saturation=0.6, mix=0.15, offset=0, noise=0)
    assert torch.allclose(
        photometric_jitter(x, torch.Generator().manual_seed(0), grey_only), x.float(), atol=1e-3
    )
    # Noise and mixing do change a coloured frame, and nothing is drawn for terms that are off.
    y = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (4, 66, 200, 3), dtype=np.uint8))
    off = JitterConfig(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    assert torch.equal(photometric_jitter(y, torch.Generator().manual_seed(0), off), y.float())
    assert (photometric_jitter(y, torch.Generator().manual_seed(0)) - y.float()).abs().mean() > 1.0


def test_training_looks_are_seeded_per_frame_and_never_the_evaluation_looks(make_env):
    env = make_env(LANE_KEEP, episode_seconds=2.0)
    pool = LookPool(env, LookConfig(count=3, strength=1.0, default_fraction=0.25), run_seed=0)
    a = pool.picker(5, 14).pick(60)
    b = pool.picker(5, 14).pick(60)
    assert [id(r) for r in a] == [id(r) for r in b]
    looks = {r.palette for r in a}
    assert Palette() in looks and 2 <= len(looks) <= 4  # the default look and the randomised ones
    train_looks = {pool.palette(i) for i in range(3)}
    assert len(train_looks) == 3 and Palette() not in train_looks
    # The env's randomised looks on evaluation seeds are other draws.
    eval_env = make_env(LANE_KEEP, randomize=1.0, episode_seconds=2.0)
    for seed in range(1_000_000, 1_000_003):
        eval_env.reset(seed=seed)
        assert eval_env.unwrapped.obs_type.renderer.palette not in train_looks
    # Looks change how the frames look and nothing else: same labels, other pixels.
    f0, l0, n0 = collect_expert_episode(env, 3, 2, ViewConfig(), 0.15, 1.0)
    f1, l1, n1 = collect_expert_episode(env, 3, 2, ViewConfig(), 0.15, 1.0, pool)
    assert n0 == n1 and np.array_equal(l0, l1) and f0.shape == f1.shape
    differs = np.abs(f0.astype(int) - f1).mean(axis=(1, 2, 3)) > 2.0
    assert 0.4 < differs.mean() < 1.0


@pytest.mark.slow
def test_pilotnet_overfits_a_small_dataset(make_env):
    """A real learning test: 64 expert frames (with extra views, so the labels vary) are fitted closely."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    env = make_env(LANE_KEEP, episode_seconds=2.2)
    frames, labels, _ = collect_expert_episode(env, expert_seeds(0, 1)[0], 2, ViewConfig(), 0.15, 1.0)
    frames, labels = frames[:64], labels[:64]
    assert len(frames) == 64 and labels.std() > 0.05
    cfg = BCConfig(
        out=Path("unused"),
        batch_size=16,
        lr=1e-3,
        precision="fp32",
        patience=100,
        progress=False,
        jitter=JitterConfig(0.0, 0.0, 0.0),
    )
    model = PilotNet()
    idx = np.arange(64)
    before = evaluate_loss(model, frames, labels, idx)
    Trainer(model, cfg).fit(frames, labels, idx, idx, 12, "overfit", np.random.default_rng(0))
    after = evaluate_loss(model, frames, labels, idx)
    variance = float(labels.var())
    assert after < 0.05 * variance, f"MSE {after:.5f} (before {before:.5f}, label variance {variance:.5f})"


@pytest.mark.slow
def test_training_twice_with_the_same_seed_gives_identical_weights(tmp_path):
    def run(name: str, seed: int) -> dict[str, torch.Tensor]:
        cfg = BCConfig(
            out=tmp_path / name / "m.safetensors",
            expert_episodes=2,
            episode_seconds=2.0,
            augment=1,
            epochs=2,
            batch_size=16,
            seed=seed,
            looks=3,
            progress=False,
        )
        metrics = train_bc(cfg, log=lambda _: None)
        assert metrics["data"]["frames"] == 2 * 20 * 2
        assert (tmp_path / name / "m.csv").is_file() and (tmp_path / name / "m.png").is_file()
        assert (tmp_path / name / "m.metrics.json").is_file()
        return load_checkpoint(cfg.out, expected_arch="pilotnet")[0]

    a, b, c = run("a", 0), run("b", 0), run("c", 1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_recorded_demos_are_replayed_to_render_the_extra_views(tmp_path, capsys):
    """--data: the episode is re-simulated from its seed and actions (no divergence warning) for the views."""
    from training.bc.data import Dataset
    from training.bc.from_demos import load_demos
    from training.data.demo_reader import load_episode
    from training.data.record import record

    demos = tmp_path / "demos"
    record(LANE_KEEP, {"episode_seconds": 2.0}, Expert(), 1, demos, noise=0.2, seed=7, progress=False)
    cfg = BCConfig(out=tmp_path / "m.safetensors", data=demos, augment=2, randomize=0.0, progress=False)
    data = Dataset()
    load_demos(cfg, data, log=lambda _: None)
    assert capsys.readouterr().err == ""
    episode = load_episode(next(demos.glob("*.npz")))
    assert data.states == episode.steps == 20 and data.size == 3 * 20
    assert episode.labels is not None
    assert np.allclose(data.labels[0][:20], episode.labels[:, 0])
    assert np.array_equal(data.frames[0][:20], episode.frames[:20])
    # With training looks the replayed states are redrawn too (same labels, frames in other looks).
    looks_cfg = BCConfig(out=tmp_path / "m.safetensors", data=demos, augment=2, looks=2, progress=False)
    redrawn = Dataset()
    load_demos(looks_cfg, redrawn, log=lambda _: None)
    assert redrawn.size == data.size and np.array_equal(redrawn.labels[0], data.labels[0])
    assert not np.array_equal(redrawn.frames[0], data.frames[0])


# ------------------------------------------------------------------------------ command-line checks
TRAFFIC = "camdrive/Traffic-v0"


def _rewrite(path: Path, out: Path, **arrays_or_meta: object) -> Path:
    """A copy of episode `path` at `out` with arrays replaced and meta fields (key `meta_<field>`) changed."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays["meta"]))
    for key, value in arrays_or_meta.items():
        if key.startswith("meta_"):
            meta[key.removeprefix("meta_")] = value
        else:
            arrays[key] = value
    arrays["meta"] = np.array(json.dumps(meta))
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **arrays)
    return out


@pytest.fixture(scope="module")
def demo_files(tmp_path_factory) -> dict[str, Path]:
    """One 2 s LaneKeep-v0 expert episode and one 8-step Traffic-v0 expert episode (also 66x200x3)."""
    from training.data.record import record

    root = tmp_path_factory.mktemp("demos")
    (lane,) = record(LANE_KEEP, {"episode_seconds": 2.0}, Expert(), 1, root / "lane", seed=7, progress=False)
    (traffic,) = record(
        TRAFFIC, {}, Expert(), 1, root / "traffic", seed=3, steps_per_episode=8, progress=False
    )
    return {"lane": lane.path, "traffic": traffic.path}


def small_bc_args(data: Path, out: Path) -> list[str]:
    return ["train", "bc", "--data", str(data), "--out", str(out), "--epochs", "1", "--batch-size", "8",
            "--augment", "1", "--randomize", "0", "--quiet"]  # fmt: skip


def test_bc_refuses_demos_of_another_env_or_without_steering(demo_files, tmp_path, capsys):
    """Traffic-v0 frames pass the shape check, but its action numbers 0..4 are no steering labels."""
    import shutil

    from training.bc.data import Dataset
    from training.bc.from_demos import load_demos
    from training.data.demo_reader import load_episode

    traffic = load_episode(demo_files["traffic"])
    assert traffic.frames.shape[1:] == (66, 200, 3) and traffic.labels.dtype.kind == "i"
    assert traffic.labels.max() > 1  # values that would be wild steering labels
    data_dir = tmp_path / "mixed"
    data_dir.mkdir()
    lane_copy = Path(shutil.copy(demo_files["lane"], data_dir / "episode_a.npz"))
    traffic_copy = Path(shutil.copy(demo_files["traffic"], data_dir / "episode_b.npz"))
    lane = load_episode(lane_copy)
    # A LaneKeep-v0 file whose labels are integers: not continuous steering either.
    int_labels = _rewrite(
        lane_copy, data_dir / "episode_c.npz", labels=np.ones_like(lane.labels, dtype=np.int64)
    )

    cfg = BCConfig(out=tmp_path / "m.safetensors", data=data_dir, augment=0, randomize=0.0, progress=False)
    data = Dataset()
    load_demos(cfg, data, log=lambda _: None)
    assert capsys.readouterr().err.splitlines() == [
        f"camdrive train bc: warning: {traffic_copy}: recorded in camdrive/Traffic-v0, not "
        "camdrive/LaneKeep-v0: its actions are not camdrive/LaneKeep-v0 steering; skipped",
        f"camdrive train bc: warning: {int_labels}: its labels are int64 numbers, not continuous steering; "
        "skipped",
    ]
    assert data.episodes == 1 and data.sources == ["demo"]
    np.testing.assert_array_equal(data.labels[0], lane.labels[:, 0])

    # Only refused episodes: bad input, refused before training on nothing.
    only_traffic = demo_files["traffic"].parent
    assert run_cli(small_bc_args(only_traffic, tmp_path / "t" / "m.safetensors")) == 2
    err = capsys.readouterr().err
    assert "camdrive/Traffic-v0, not camdrive/LaneKeep-v0" in err
    assert one_error_line(err) == (
        f"camdrive train bc: error: --data {only_traffic}: no usable episodes (1 file(s) skipped)"
    )
    assert not (tmp_path / "t").exists()


@pytest.mark.slow
def test_each_skipped_demo_is_one_line_and_none_usable_is_bad_input(demo_files, tmp_path):
    """The real command, as a user sees it: one stderr line per skipped file (a Python warning takes
    two, the second a line of camdrive's code), then one error line and exit code 2."""
    import shutil
    import subprocess

    data = tmp_path / "refused"
    data.mkdir()
    traffic = Path(shutil.copy(demo_files["traffic"], data / "episode_a.npz"))
    garbage = data / "episode_b.npz"
    garbage.write_bytes(b"not a zip")
    lane_labels = np.load(demo_files["lane"])["labels"]
    int_labels = _rewrite(demo_files["lane"], data / "episode_c.npz", labels=lane_labels.astype(np.int64))
    argv = [sys.executable, "-m", "training.cli", *small_bc_args(data, tmp_path / "m.safetensors")]
    run = subprocess.run(argv, cwd=Path(__file__).parents[1], capture_output=True, text=True, timeout=300)
    lines = run.stderr.splitlines()
    assert run.returncode == 2, run.stderr
    assert [line.split(": ", 2)[1:] for line in lines[:3]] == [
        ["warning", f"{traffic}: recorded in camdrive/Traffic-v0, not camdrive/LaneKeep-v0: its actions "
         "are not camdrive/LaneKeep-v0 steering; skipped"],
        ["warning", f"{garbage}: not an npz archive (no zip header): not a camdrive demo; skipped"],
        ["warning", f"{int_labels}: its labels are int64 numbers, not continuous steering; skipped"],
    ]  # fmt: skip
    assert lines[3:] == [f"camdrive train bc: error: --data {data}: no usable episodes (3 file(s) skipped)"]
    assert not (tmp_path / "m.safetensors").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dagger", "1", "--dagger-episodes", "101"], "--dagger-episodes must be at most 100, got 101"),
        (["--dagger", "51"], "--dagger must be at most 50 rounds, got 51"),
        (["--expert-episodes", "5001"], "--expert-episodes must be at most 5000, got 5001"),
        (["--seed", "100"], "--seed must be below 100"),
        (["--data", "MISSING"], "no such directory"),
        (["--epochs", "0"], "--epochs must be an integer >= 1, got 0"),
        (["--noise", "-0.5"], "--noise must be a number >= 0, got -0.5"),
        (["--default-look", "1.5"], "--randomize and --default-look must be in 0..1"),
        (["--view-return-s", "nan"], "--view-return-s must be above 0, got nan"),
    ],
)
def test_bc_refuses_impossible_runs_before_any_work(args, message, tmp_path, capsys, monkeypatch):
    import training.bc.train as bc

    def must_not_run(*_: object, **__: object) -> dict:
        raise AssertionError("train_bc started although the command line cannot finish")

    monkeypatch.setattr(bc, "train_bc", must_not_run)
    args = [str(tmp_path / "missing") if a == "MISSING" else a for a in args]
    assert run_cli(["train", "bc", "--out", str(tmp_path / "m.safetensors"), "--quiet", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("camdrive train bc: error: ") and message in err and len(err.splitlines()) == 1


def test_bc_accepts_the_largest_allowed_run(tmp_path, monkeypatch):
    """The limits are not stricter than the seed ranges: the last allowed DAgger round of the last
    allowed run seed still uses training seeds only, and one more round is refused."""
    import training.bc.train as bc

    calls: list[BCConfig] = []
    monkeypatch.setattr(bc, "train_bc", lambda cfg, log: calls.append(cfg) or {})
    argv = ["train", "bc", "--out", str(tmp_path / "m.safetensors"), "--quiet", "--seed", "99",
            "--expert-episodes", "5000", "--dagger", "50", "--dagger-episodes", "100"]  # fmt: skip
    assert run_cli(argv) == 0 and len(calls) == 1
    assert max(dagger_seeds(99, 50, 100)) == EVAL_SEED_START - 1
    assert max(dagger_seeds(0, 50, 100)) < SEED_STRIDE  # run seed 0 never reaches run 1's seeds
    with pytest.raises(ValueError, match="DAgger rounds are 1 .. 50"):
        dagger_seeds(0, 51, 1)


@pytest.mark.slow
def test_bc_trains_without_views_on_demos_whose_env_options_are_gone(demo_files, tmp_path, capsys):
    """An option this camdrive no longer knows: no re-simulation (one line naming the file), but the
    recorded frames and labels are still trained on."""
    old = _rewrite(
        demo_files["lane"], tmp_path / "old" / "episode_old.npz", meta_env_options={"old_option": 1}
    )
    out = tmp_path / "model" / "m.safetensors"
    assert run_cli(small_bc_args(old.parent, out)) == 0
    (line,) = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert line.startswith(f"camdrive train bc: warning: {old}: cannot re-simulate")
    assert "rejects the recorded env_options" in line and "unknown option(s) old_option" in line
    metrics = json.loads((out.parent / "m.metrics.json").read_text())
    assert metrics["data"]["episodes"] == 1 and metrics["data"]["frames"] == metrics["data"]["states"] == 20


# ------------------------------------------------------------------------------ --device, --tensorboard
def tiny_bc(out: Path, **options: object) -> BCConfig:
    """Two 2 s expert episodes (one for validation), two short epochs, a DAgger round of one 2 s episode
    and one epoch: about a second in all."""
    return BCConfig(
        out=out, expert_episodes=2, episode_seconds=2.0, augment=1, epochs=2, batch_size=16, looks=3,
        dagger=1, dagger_episodes=1, dagger_epochs=1, progress=False, **options,
    )  # fmt: skip


@pytest.mark.slow
def test_bc_device_cpu_and_tensorboard_change_no_number_and_log_the_losses(
    tmp_path, monkeypatch, tensorboard_scalars
):
    """--device cpu is what the default picks here: the same weights bit for bit; --tensorboard adds
    event files with the per-epoch scalars (and closes them when the run is interrupted), and without
    it none are written."""
    from torch.utils.tensorboard import SummaryWriter

    import training.bc.train as bc

    plain = tiny_bc(tmp_path / "plain" / "m.safetensors")
    logged = tiny_bc(tmp_path / "logged" / "m.safetensors", device="cpu", tensorboard=tmp_path / "tb")
    train_bc(plain, log=lambda _: None)
    metrics = train_bc(logged, log=lambda _: None)
    (a, meta), (b, _) = load_checkpoint(plain.out), load_checkpoint(logged.out)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert metrics["machine"]["device"] == meta["training"]["device"] == "cpu"
    assert json.loads((tmp_path / "logged" / "m.metrics.json").read_text())["config"]["tensorboard"] == str(
        tmp_path / "tb"
    )
    assert not list(tmp_path.glob("plain/**/events.out.tfevents.*"))
    scalars = tensorboard_scalars(tmp_path / "tb")
    per_epoch = {"loss/train", "loss/validation", "train/lr", "perf/epoch_seconds"}
    per_round = {
        "dagger/interventions",
        "dagger/learner_km",
        "dagger/val_loss",
        "perf/dagger_env_steps_per_s",
    }
    assert set(scalars) == per_epoch | per_round
    assert [step for step, _ in scalars["loss/validation"]] == [1, 2, 3]  # 2 epochs, then DAgger's
    assert [step for step, _ in scalars["dagger/val_loss"]] == [1]
    assert scalars["dagger/val_loss"][0][1] == pytest.approx(metrics["best_val_loss"], rel=1e-6)

    closed: list[SummaryWriter] = []
    close = SummaryWriter.close
    monkeypatch.setattr(SummaryWriter, "close", lambda writer: closed.append(writer) or close(writer))

    def ctrl_c(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(bc, "write_loss_csv", ctrl_c)
    cut = tmp_path / "cut" / "m.safetensors"
    with pytest.raises(KeyboardInterrupt, match=f"the best model so far .* is in {cut}, without its logs"):
        train_bc(tiny_bc(cut, tensorboard=tmp_path / "tb_cut"), log=lambda _: None)
    assert len(closed) == 1 and set(tensorboard_scalars(tmp_path / "tb_cut")) == set(scalars)
    assert load_checkpoint(cut)[1]["training"]["val_loss"] > 0  # the best model so far, kept
    assert sorted(p.name for p in cut.parent.iterdir()) == ["m.safetensors"]  # and nothing half-written


def test_bc_device_and_tensorboard_options_reach_the_config(tmp_path, monkeypatch):
    import training.bc.train as bc

    calls: list[BCConfig] = []
    monkeypatch.setattr(bc, "train_bc", lambda cfg, log: calls.append(cfg) or {})
    argv = ["train", "bc", "--out", str(tmp_path / "m.safetensors"), "--quiet"]
    assert run_cli(argv) == 0
    assert run_cli([*argv, "--device", "cpu", "--tensorboard", str(tmp_path / "tb")]) == 0
    assert (calls[0].device, calls[0].tensorboard) == ("auto", None)
    assert (calls[1].device, calls[1].tensorboard) == ("cpu", tmp_path / "tb")


def test_bc_refuses_an_unusable_device_or_tensorboard_before_any_work(
    tmp_path, capsys, monkeypatch, unusable_trainer_option
):
    import training.bc.train as bc

    option, message = unusable_trainer_option
    monkeypatch.setattr(bc, "train_bc", lambda *_: pytest.fail("train_bc started"))
    out = tmp_path / "run" / "m.safetensors"
    assert run_cli(["train", "bc", "--out", str(out), "--quiet", *option]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"camdrive train bc: error: {option[0]}") and message in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "run").exists() and not (tmp_path / "DIR").exists()
    # Library callers get the same check from train_bc itself (this module's name: the real one).
    value = option[1] if option[0] == "--device" else Path(option[1])
    with pytest.raises(ValueError, match=message.split(":")[0]):
        train_bc(tiny_bc(out, **{option[0][2:]: value}))
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------ outputs: never clobbered
def bc_files(folder: Path) -> dict[str, bytes]:
    """Every file in `folder`, by name, with its bytes."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def one_error_line(err: str) -> str:
    """The run's single `camdrive train bc: error:` line (its progress log also goes to stderr)."""
    (line,) = [line for line in err.splitlines() if line.startswith("camdrive train bc: error: ")]
    assert "Traceback" not in err
    return line


@pytest.mark.slow
def test_two_models_in_one_folder_keep_their_own_logs(demo_files, tmp_path):
    """The logs are named after the model: a second model beside the first changes none of its files."""
    folder = tmp_path / "models"
    assert run_cli(small_bc_args(demo_files["lane"].parent, folder / "a.safetensors")) == 0
    first = bc_files(folder)
    assert set(first) == {"a.safetensors", "a.csv", "a.png", "a.metrics.json"}
    assert run_cli([*small_bc_args(demo_files["lane"].parent, folder / "b.safetensors"), "--seed", "1"]) == 0
    after = bc_files(folder)
    assert set(after) == set(first) | {"b.safetensors", "b.csv", "b.png", "b.metrics.json"}
    assert {name: after[name] for name in first} == first
    assert json.loads(after["b.metrics.json"])["model_file"] == "b.safetensors"


@pytest.mark.parametrize("existing", ["m.safetensors", "m.csv", "m.png", "m.metrics.json"])
def test_bc_replaces_no_file_without_force(existing, demo_files, tmp_path, capsys, monkeypatch):
    """A model file (or anything under its name) and each of its logs: refused before any work, in one
    line naming it, the file untouched."""
    import training.bc.train as bc

    monkeypatch.setattr(bc, "train_bc", lambda *_, **__: pytest.fail("train_bc started"))
    (tmp_path / existing).write_bytes(b"the user's own file")
    assert run_cli(small_bc_args(demo_files["lane"].parent, tmp_path / "m.safetensors")) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and str(tmp_path / existing) in err and "--force" in err, err
    assert bc_files(tmp_path) == {existing: b"the user's own file"}


def test_bc_force_replaces_the_model_and_its_logs(demo_files, tmp_path):
    for name in ("m.safetensors", "m.csv", "m.png", "m.metrics.json"):
        (tmp_path / name).write_bytes(b"an earlier run")
    assert run_cli([*small_bc_args(demo_files["lane"].parent, tmp_path / "m.safetensors"), "--force"]) == 0
    files = bc_files(tmp_path)
    assert set(files) == {"m.safetensors", "m.csv", "m.png", "m.metrics.json"}
    assert b"an earlier run" not in files.values()
    assert load_checkpoint(tmp_path / "m.safetensors", expected_arch="pilotnet")


def test_a_run_that_completes_no_epoch_fails_and_writes_nothing(demo_files, tmp_path, capsys):
    """--max-minutes used up before the first epoch: exit code 1, one error line, no model, no logs;
    with --force an earlier model stays, since nothing replaced it."""
    argv = [*small_bc_args(demo_files["lane"].parent, tmp_path / "m.safetensors"), "--max-minutes", "1e-6"]
    assert run_cli(argv) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "no epoch completed" in line and "no model written" in line
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "m.safetensors").write_bytes(b"an earlier model")
    assert run_cli([*argv, "--force"]) == 1
    assert bc_files(tmp_path) == {"m.safetensors": b"an earlier model"}


def test_every_config_field_has_the_docstring_its_option_shows(capsys):
    """The options are made from BCConfig's fields: each field documents itself, and --help shows it."""
    import dataclasses

    from training import cli
    from training.common.config_cli import field_docs

    for cls in (BCConfig, ViewConfig, LookConfig, JitterConfig):
        assert set(field_docs(cls)) == {f.name for f in dataclasses.fields(cls)}, cls.__name__
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["train", "bc", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert f"--color {{rgb,yuv}} {field_docs(BCConfig)['color_space']} (default: rgb)" in shown
    assert f"--view-return-s T {field_docs(ViewConfig)['return_s']} (default: 0.9)" in shown
