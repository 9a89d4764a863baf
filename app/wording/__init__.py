"""How ponder words what happened, the same in every frontend, and events made safe to show."""
