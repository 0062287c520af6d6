"""Simulation: the embedded simulator, the CARLA bridge and the CARLA-compatible server."""
