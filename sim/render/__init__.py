"""Drawing the world: camera frames, the road texture, cars, the top-down view."""
