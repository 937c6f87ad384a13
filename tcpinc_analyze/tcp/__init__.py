"""TCP: segments, options, per-direction reassembly and the connection table."""
