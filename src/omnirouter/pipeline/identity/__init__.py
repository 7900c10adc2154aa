"""Identity resolution: one customer across every channel, live, guarded and reversible."""
