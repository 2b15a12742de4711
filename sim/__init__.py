"""camdrive's world: road, cars, traffic, camera renderer and Gymnasium environments (numpy only).

Importing `sim` registers the environments, so afterwards
`gymnasium.make("camdrive/LaneKeep-v0")` and `gymnasium.make("camdrive/Traffic-v0")` work.
Gymnasium 1.x has no plugin entry points, so without the import use
`gymnasium.make("sim:camdrive/LaneKeep-v0")`, which imports `sim` for you.
"""

from gymnasium.envs.registration import register, registry

for _name, _entry in (
    ("LaneKeep-v0", "sim.envs.lane_keep:LaneKeepEnv"),
    ("Traffic-v0", "sim.envs.traffic:TrafficEnv"),
):
    if f"camdrive/{_name}" not in registry:
        register(id=f"camdrive/{_name}", entry_point=_entry)
