"""Drawing the world: camera frames, the road's layers, cars, the top-down view."""
