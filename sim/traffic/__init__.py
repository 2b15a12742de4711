"""Traffic around the ego car: IDM car-following and MOBIL-style lane changes in Frenet coordinates.

Traffic cars live only in a window [ego_s - behind_m, ego_s + ahead_m] that moves with the ego (cut
at s = 0, where the road starts); a car that leaves it is recycled to the opposite end, so a fixed
number of arrays describes an endless highway. Everything is computed in Frenet coordinates (s
along the road, d positive to the left) because car-following and lane logic are one-dimensional
there; `Traffic.world_pose` converts to the world only for rendering and collision tests.

One module per idea:

- `traffic`: the `Traffic` state (arrays per car, the all-vehicle buffers), reset, step and the
  queries the world, the safety system and the observations ask;
- `config`: `TrafficConfig` and the cars' body sizes;
- `idm`: car following by the Intelligent Driver Model;
- `lane_changes`: when a car changes lanes (MOBIL) and how it moves over;
- `recycling`: respawning cars that left the window at its other end;
- `step_kernel`: the common path of a step in one compiled call.

`from sim.traffic import Traffic, TrafficConfig` is the public interface.
"""

from sim.traffic.config import (
    HEIGHT_RANGE,
    LENGTH_RANGE,
    N_COLORS,
    WIDTH_RANGE,
    TrafficConfig,
    TrafficDoesNotFitError,
)
from sim.traffic.traffic import Traffic

__all__ = [
    "HEIGHT_RANGE",
    "LENGTH_RANGE",
    "N_COLORS",
    "WIDTH_RANGE",
    "Traffic",
    "TrafficConfig",
    "TrafficDoesNotFitError",
]
