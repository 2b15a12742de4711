"""A geometric lane-tracking controller: pure pursuit on the road, with curvature feed-forward.

Used by Traffic-v0's `lane` action mode (DeepTraffic's built-in lane changes) and by the privileged
expert driver. It reads the true state, never pixels.
"""

from __future__ import annotations

import math

from sim.road import Road, wrap_angle
from sim.vehicle import VehicleParams


def steer_to_offset(
    road: Road,
    params: VehicleParams,
    s: float,
    d: float,
    yaw: float,
    speed: float,
    d_target: float,
    lookahead_time: float = 0.9,
    min_lookahead: float = 7.0,
) -> float:
    """Normalised steering input (-1 left .. +1 right) that drives toward lateral offset `d_target`.

    Pure pursuit aims at a point on the target line `lookahead` metres ahead; the road's curvature
    there is added so the car holds a curve without a steady offset.
    """
    lookahead = max(min_lookahead, lookahead_time * speed)
    heading_error = float(wrap_angle(yaw - road.heading_at(s)))
    # Angle from the car's heading to the target point, in the road's local frame.
    alpha = math.atan2(d_target - d, lookahead) - heading_error
    kappa = 2.0 * math.sin(alpha) / lookahead + road.curvature_at(s + 0.5 * lookahead)
    delta = math.atan(params.wheelbase * kappa)
    steer = -delta / params.max_wheel_angle(speed)
    return max(-1.0, min(1.0, steer))
