"""Control: longitudinal and lateral controllers and the control node."""
