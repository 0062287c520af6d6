"""Perception: the CNN, its inference node, and pixels-to-objects post-processing."""
