"""What both camdrive environments share: options, reset/step plumbing, info, rendering.

Subclasses choose the observation and action types and the reward; the loop itself lives here so
LaneKeep-v0 and Traffic-v0 cannot drift apart.

Beyond Gymnasium's API, `CamDriveEnv` is the contract for code that needs more than pixels (experts,
planners, evaluation, view augmentation, the viewer; `unwrap` finds the env under any wrappers): the
privileged `world`, the validated `options`, the `obs_type` and `action_type` in use, the episode's
`look`, `advance` (a step that draws nothing) and `planning_copy`. Everything else is private.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, fields
from typing import Any, Generic, TypeVar

import gymnasium as gym
import numpy as np

from sim import seeding
from sim.actions import ActionType
from sim.camera import CameraConfig
from sim.observations import CameraObservation, ObservationType
from sim.render.frontcam import FrameJob
from sim.render.palette import Palette
from sim.road import RoadConfig
from sim.safety import SafetyConfig
from sim.traffic import TrafficConfig, TrafficDoesNotFitError
from sim.validation import check_range, check_seed, short_repr
from sim.vehicle import VehicleParams
from sim.view import EnvView
from sim.world import World


@dataclass(frozen=True)
class CommonOptions:
    """Options every camdrive env takes as `gymnasium.make` keywords."""

    camera_width: int = 200
    camera_height: int = 66
    camera_hfov_deg: float = 80.0
    camera_mount_height: float = 1.3
    camera_pitch_deg: float = 6.0
    grayscale: bool = False
    speedometer: bool = False
    """A speed bar along the frame's bottom edge (`sim.render.gauge`): the car's speed, which the camera
    alone shows only as the road's motion between frames."""
    lanes: int = 3
    lane_width: float = 3.6
    curviness: float = 0.7
    traffic_cars: int = 6
    traffic_speed_min: float = 16.0
    traffic_speed_max: float = 24.0
    safety: bool = True
    control_hz: float = 10.0
    episode_seconds: float = 60.0
    randomize: float = 0.0
    """Domain randomisation strength, 0 (default look) to 1 (wide variety); drawn from the episode seed."""

    def validate(self) -> None:
        """Check every option (each env's options add their own checks to these)."""
        self.check_common()

    def check_common(self) -> None:
        """Check the options every env has (`parse_options` has made numpy scalars Python values)."""
        if not isinstance(self.grayscale, bool):
            raise ValueError(f"grayscale must be True or False, got {short_repr(self.grayscale)}")
        if not isinstance(self.speedometer, bool):
            raise ValueError(f"speedometer must be True or False, got {short_repr(self.speedometer)}")
        if not isinstance(self.safety, bool):
            raise ValueError(f"safety must be True or False, got {short_repr(self.safety)}")
        check_range("traffic_cars", self.traffic_cars, 0, 60, integer=True)
        self.traffic().validate(prefix="traffic_")  # its messages then name these options
        check_range("control_hz", self.control_hz, 1.0, 50.0)
        check_range("episode_seconds", self.episode_seconds, 1.0, 36000.0)
        check_range("randomize", self.randomize, 0.0, 1.0)
        self.camera().validate()

    def camera(self) -> CameraConfig:
        return CameraConfig(
            width=self.camera_width,
            height=self.camera_height,
            hfov_deg=self.camera_hfov_deg,
            mount_height=self.camera_mount_height,
            pitch_deg=self.camera_pitch_deg,
        )

    def traffic(self) -> TrafficConfig:
        return TrafficConfig(
            cars=self.traffic_cars, speed_min=self.traffic_speed_min, speed_max=self.traffic_speed_max
        )


OptionsT = TypeVar("OptionsT", bound=CommonOptions)


def parse_options(cls: type[OptionsT], kwargs: dict[str, Any]) -> OptionsT:
    """Build the options dataclass `cls` from keywords, validated.

    An unknown keyword is a ValueError that lists the valid ones. A numpy scalar counts as its Python
    value (np.int64(3) as 3, np.float32 as float, np.bool_ as bool, np.str_ as str) and is stored as one,
    so options read back, printed or written to a model's metadata are plain Python values.
    """
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(kwargs) - names)
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)}; valid options: {', '.join(sorted(names))}")
    values: dict[str, Any] = {name: python_scalar(value) for name, value in kwargs.items()}
    options = cls(**values)
    options.validate()
    return options


def python_scalar(value: object) -> object:
    """`value` as the Python scalar it stands for if it is a numpy bool, integer, float or str scalar;
    anything else unchanged (a timedelta64, which numpy files under integers, is no number: the option's
    check refuses it)."""
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer) and not isinstance(value, np.timedelta64):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.str_):
        return str(value)
    return value


class RenderModes(list):
    """The render modes, as a list that refuses to be searched for anything but a str.

    `gymnasium.make` looks a render_mode up in the class's `metadata["render_modes"]` before the env is
    built, then calls str methods on a mode it did not find: `render_mode=3` ended in an AttributeError
    inside gymnasium. That lookup is the first thing it does with the mode, so a mode that is no str is
    refused here, with `check_render_mode`'s message. A str is left to gymnasium, which makes
    "rgb_array_list" "rgb_array" in a wrapper, and then to `check_render_mode` in `CamDriveEnv.__init__`.
    """

    def __contains__(self, mode: object) -> bool:
        if not isinstance(mode, str):
            check_render_mode(mode, self)
        return super().__contains__(mode)


def check_render_mode(mode: object, modes: list[str]) -> None:
    """ValueError listing `modes` unless `mode` is None or one of them."""
    if mode is not None and (not isinstance(mode, str) or mode not in modes):
        raise ValueError(f"render_mode must be one of {list(modes)} or None, got {short_repr(mode)}")


def registered_id(cls: type) -> str:
    """The id `gymnasium.make` knows `cls` by, for messages (its class name if it is not registered)."""
    entry_point = f"{cls.__module__}:{cls.__qualname__}"
    ids = (spec.id for spec in gym.registry.values() if spec.entry_point == entry_point)
    return next(ids, cls.__qualname__)


def unwrap(env: gym.Env) -> CamDriveEnv[Any]:
    """The camdrive env under `env`'s wrappers (`env.unwrapped`, typed); TypeError if it is none."""
    inner = env.unwrapped
    if not isinstance(inner, CamDriveEnv):
        raise TypeError(f"not a camdrive env: {type(inner).__name__}")
    return inner


class CamDriveEnv(gym.Env[np.ndarray, Any], Generic[OptionsT]):
    """Base class; see LaneKeepEnv and TrafficEnv for the documented environments.

    Public beyond Gymnasium's API (module docstring): `world`, `options`, `obs_type`, `action_type`,
    `look`, `observe`, `current_info`, `advance`, `planning_copy`, and the counters `dt` (seconds per
    step), `max_steps`, `steps`, `episode_seed`, `last_reward`, `last_controls` (steer, accel applied).
    """

    metadata = {"render_modes": RenderModes(["human", "rgb_array"]), "render_fps": 10}

    def __init__(self, options: OptionsT, road: RoadConfig, render_mode: str | None) -> None:
        check_render_mode(render_mode, self.metadata["render_modes"])
        self._options = options
        self.render_mode = None if render_mode is None else str(render_mode)
        self.metadata = {**self.metadata, "render_fps": options.control_hz}
        self.dt = 1.0 / options.control_hz
        self.max_steps = int(round(options.episode_seconds * options.control_hz))
        self._world = World(road, options.traffic(), VehicleParams(), SafetyConfig(enabled=options.safety))
        self._check_traffic_fits()
        self._obs_type = self._make_observation()
        self._action_type = self._make_action()
        self._action_type.name_env(registered_id(type(self)))
        self.observation_space = self._obs_type.space
        self.action_space = self._action_type.space
        self._view: EnvView | None = None
        self._look = Palette()
        self.episode_seed = 0
        self.steps = 0
        self.last_reward = 0.0
        self.last_controls = (0.0, 0.0)

    @property
    def world(self) -> World:
        """The privileged state: road, ego car and traffic as they truly are, which the agent sees only
        through its observations. For experts, planners, evaluation and view augmentation; only this
        env's `reset`, `step` and `advance` move it on (a driver may move the ego: `World.place_ego`)."""
        return self._world

    @property
    def options(self) -> OptionsT:
        """The env's options (its `gymnasium.make` keywords), validated, as Python values."""
        return self._options

    @property
    def obs_type(self) -> ObservationType:
        """What the agent observes (`options.obs_type`'s object): a `CameraObservation` or a grid."""
        return self._obs_type

    @property
    def action_type(self) -> ActionType:
        """How actions become controls; its state (a discrete action's `target_speed`, lane mode's
        `target_lane`) is what the action has asked for so far this episode."""
        return self._action_type

    @property
    def camera(self) -> CameraObservation:
        """The camera observation (its renderer draws the frames in the episode's look), for code that
        draws extra views as the agent would see them; TypeError for a grid env."""
        if not isinstance(self._obs_type, CameraObservation):
            env_id = registered_id(type(self))
            raise TypeError(f"{env_id} with obs_type={self._obs_type.name!r} has no camera")
        return self._obs_type

    @property
    def look(self) -> Palette:
        """The episode's look: its randomised palette (option `randomize`), else the default one."""
        return self._look

    def _check_traffic_fits(self) -> None:
        """Place the traffic once, so that too many cars for the lanes fail in `gymnasium.make`, naming
        the options, rather than in the first `reset`. Where the cars go does not depend on the seed
        (every lane has the same slots), so one trial placement decides it."""
        try:
            self._world.reset(0, lane=0, speed=0.0)
        except TrafficDoesNotFitError:
            raise ValueError(
                f"traffic_cars={self._options.traffic_cars} do not fit on lanes={self._options.lanes}: "
                "lower traffic_cars or add lanes"
            ) from None

    # Subclasses provide these.
    def _make_observation(self) -> ObservationType:
        raise NotImplementedError

    def _make_action(self) -> ActionType:
        raise NotImplementedError

    def _start(self) -> tuple[int, float]:
        """Start lane and speed for a new episode (may use self.np_random)."""
        raise NotImplementedError

    def _reward(self, progress: float, terminated: bool) -> float:
        """The step's reward for `progress` metres along the road (`terminated`: it collided or went
        off the road)."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------------ gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        self.new_episode(seed)
        if self.render_mode == "human":
            self.render()
        return self.observe(), self._info()

    def step(self, action: object) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        reward, terminated, truncated = self.advance(action)
        if self.render_mode == "human":
            self.render()
        return self.observe(), reward, terminated, truncated, self._info()

    # The two halves of reset and step that do not render: `sim.envs.vector` calls them for each of its
    # worlds and then renders all the observations in one call; planners step copies with `advance`.
    def new_episode(self, seed: int | None) -> None:
        """Start an episode (seeding the env's generator when `seed` is not None), without observing."""
        super().reset(seed=check_seed(seed))
        self.episode_seed = int(self.np_random.integers(0, 2**31 - 1))
        lane, speed = self._start()
        self._world.reset(self.episode_seed, lane, speed)
        palette = None
        if self._options.randomize > 0:
            palette = Palette.randomised(
                seeding.stream(self.episode_seed, seeding.EPISODE_LOOK), self._options.randomize
            )
        self._look = palette or Palette()
        self._obs_type.set_palette(palette, self.episode_seed)
        if self._view is not None:
            self._view.set_palette(self._look)
        self._action_type.reset(self._world)
        self.steps = 0
        self.last_reward = 0.0
        self.last_controls = (0.0, 0.0)

    def advance(self, action: object) -> tuple[float, bool, bool]:
        """Move the world one control step under `action`: (reward, terminated, truncated), without
        observing or rendering (`step` without its frame: a planner's rollouts in `planning_copy`s)."""
        controls = self._action_type.controls(action, self._world)
        s_before = self._world.s
        self._world.step(controls.steer, controls.accel, self.dt)
        self.steps += 1
        self.last_controls = (controls.steer, controls.accel)
        terminated = self._world.collided or self._world.off_road
        truncated = self.steps >= self.max_steps and not terminated
        reward = float(self._reward(self._world.s - s_before, terminated))
        self.last_reward = reward
        return reward, terminated, truncated

    def observe(self, out: np.ndarray | None = None) -> np.ndarray:
        """The current observation, rendered again without stepping (used by `camdrive bench`, and by
        `sim.envs.vector` after `new_episode`/`advance`), written into `out` if given."""
        return self._obs_type.observe(self._world, out)

    def prepare_observation(self, out: np.ndarray) -> FrameJob | None:
        """`observe(out)` in parts (`ObservationType.prepare`): the vector env prepares every sub-env's
        frame, draws them all from its threads, then finishes them."""
        return self._obs_type.prepare(self._world, out)

    def planning_copy(self) -> CamDriveEnv[OptionsT]:
        """A deep copy of this env to `advance` in, sharing the (read-only, large) renderer and window:
        the simulator is deterministic given the actions, so a copy is an exact model of the future."""
        memo = {id(self._obs_type): self._obs_type, id(self._view): self._view}
        return copy.deepcopy(self, memo)

    def current_info(self) -> dict[str, Any]:
        """The `info` dict for the current state (after an outside change such as an intervention)."""
        return self._info()

    def _info(self) -> dict[str, Any]:
        world = self._world
        info = world.state_fields()
        info["collision"] = world.collided
        info["off_road"] = world.off_road
        info["safety_brakes"] = world.safety_brakes
        info["safety_refusals"] = world.safety_refusals
        info["seed"] = self.episode_seed
        return info

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='rgb_array' or 'human'")
            return None
        if self._view is None:
            self._view = EnvView(self._world.road_config, self._options.camera())
        frame = self._view.draw(self._world, self._hud_lines())
        if self.render_mode == "human":
            self._view.show(frame, self.metadata["render_fps"])
            return None
        return frame

    def _hud_lines(self) -> list[str]:
        st = self._world.state()
        return [
            f"{st.speed * 3.6:5.1f} km/h  {st.speed * 2.23694:5.1f} mph",
            f"steer {self.last_controls[0]:+.2f}  lane {st.lane}",
            f"reward {self.last_reward:+.2f}  {st.distance / 1000:.2f} km",
        ]

    def close(self) -> None:
        if self._view is not None:
            self._view.close()
            self._view = None
