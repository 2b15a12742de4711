"""The Gymnasium environments: LaneKeep-v0 and Traffic-v0."""
