"""The env a file names (a model's metadata, a demonstration's meta), checked before anything uses it.

Model files and demonstrations record the env they belong to as an id and `gymnasium.make` keywords.
Those are data from a file, possibly a hostile one, so before they reach `gymnasium.make`:

- the id must be registered (`sim.check_env_id`: a "module:Env" id would import a module);
- the options must be a JSON object of env options. `gymnasium.make`'s own arguments are refused:
  `render_mode` would open a window (or, if not a string, crash inside gymnasium), and
  `max_episode_steps` / `disable_env_checker` change the env's wrappers, not the env;
- any failure of `gymnasium.make` on them is a ValueError saying what the env said, whatever the
  exception type, since it is the values' fault, not the program's.

`env_spaces` makes the env once per distinct (id, options) and remembers its spaces, so checking many
files of one dataset or model costs one `gymnasium.make`. No torch here: demonstrations use it too.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import gymnasium as gym

from sim import check_env_id

GYM_MAKE_ARGUMENTS = frozenset({"render_mode", "max_episode_steps", "disable_env_checker"})
"""Keywords `gymnasium.make` takes for itself: never env options, never accepted from a file."""


def check_env_options(options: object) -> dict[str, Any]:
    """`options` if it can be passed to `gymnasium.make` as env options, else ValueError saying why."""
    if not isinstance(options, dict):
        raise ValueError(f"env_options must be a JSON object of option names and values, got {options!r:.80}")
    reserved = sorted(set(options) & GYM_MAKE_ARGUMENTS)
    if reserved:
        raise ValueError(
            f"env_options holds gymnasium.make's own argument(s) {', '.join(reserved)}, not env options"
        )
    return options


def make_env(env_id: object, options: object) -> gym.Env:
    """`gymnasium.make(env_id, **options)` for values read from a file; ValueError when it cannot be made.

    Any exception of `gymnasium.make` becomes the ValueError: a bad value can fail anywhere inside the
    env's constructor, and whatever the type, the file is at fault, which the caller reports as such.
    """
    env_id = check_env_id(env_id)
    options = check_env_options(options)
    try:
        return gym.make(env_id, **options)
    except ValueError:
        raise
    except Exception as e:  # see the docstring: values from a file, so any failure is theirs
        raise ValueError(f"{type(e).__name__}: {e}") from None


def env_spaces(env_id: object, options: object) -> tuple[gym.Space, gym.Space]:
    """(observation space, action space) of the env `make_env` makes; ValueError as there.

    Made once per distinct id and options in a process. The spaces are shared: read them, never seed
    or sample them.
    """
    env_id = check_env_id(env_id)
    options = check_env_options(options)
    try:
        key = json.dumps(options, sort_keys=True)
    except (TypeError, ValueError):  # not JSON (options from code, not a file): no cache
        return _spaces(env_id, options)
    return _cached_spaces(env_id, key)


@functools.lru_cache(maxsize=64)
def _cached_spaces(env_id: str, options_json: str) -> tuple[gym.Space, gym.Space]:
    return _spaces(env_id, json.loads(options_json))


def _spaces(env_id: str, options: dict[str, Any]) -> tuple[gym.Space, gym.Space]:
    env = make_env(env_id, options)
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()
