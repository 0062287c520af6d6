"""Planning: route planner on the map graph, behaviour, local path and speed planning."""
