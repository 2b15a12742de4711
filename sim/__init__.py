"""camdrive's world: road, cars, traffic, camera renderer and Gymnasium environments.

numpy, with the loops over pixels, cars and vehicles compiled by numba; never torch.

Importing `sim` registers the environments, so afterwards
`gymnasium.make("camdrive/LaneKeep-v0")` and `gymnasium.make("camdrive/Traffic-v0")` work, and
`gymnasium.make_vec(id, num_envs=N)` builds camdrive's native vector env (`sim.envs.vector`).
Gymnasium 1.x has no plugin entry points, so without the import use
`gymnasium.make("sim:camdrive/LaneKeep-v0")`, which imports `sim` for you.
"""

from gymnasium.envs.registration import register, registry

ENV_IDS: dict[str, str] = {"lane": "camdrive/LaneKeep-v0", "traffic": "camdrive/Traffic-v0"}
"""camdrive's environments by short name (the commands' --env choices)."""

_ENTRY_POINTS = (
    ("sim.envs.lane_keep:LaneKeepEnv", "sim.envs.vector:LaneKeepVectorEnv"),
    ("sim.envs.traffic:TrafficEnv", "sim.envs.vector:TrafficVectorEnv"),
)
"""Each id's single env and its native vector env (what `gymnasium.make_vec` builds by default)."""

for _env_id, (_entry, _vector_entry) in zip(ENV_IDS.values(), _ENTRY_POINTS, strict=True):
    if _env_id not in registry:
        register(id=_env_id, entry_point=_entry, vector_entry_point=_vector_entry)


def check_env_id(env_id: object) -> str:
    """`env_id` if it names an environment registered in this process, else ValueError.

    Files (demonstrations, model metadata) name the env they were made in, and `gymnasium.make`
    imports the module of an id written "module:Env": an id read from a file must be checked here
    first, so that loading a file never imports code it names. Registered ids (camdrive's, or one a
    program registered itself) only run code that is already imported.
    """
    if not isinstance(env_id, str) or ":" in env_id or env_id not in registry:
        raise ValueError(
            f"env_id {env_id!r} is not a registered environment (camdrive's: {', '.join(ENV_IDS.values())})"
        )
    return env_id
