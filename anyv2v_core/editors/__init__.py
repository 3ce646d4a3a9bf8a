"""Built-in editors."""
