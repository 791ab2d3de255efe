"""Hardware adapters (one per port family) and the simulators on the far side of their wires."""
