"""Reports computed from timelines only: canonical timestamps, response metrics and their
charts, and the checks (hash chains, signed checkpoints) that prove the timelines intact."""
