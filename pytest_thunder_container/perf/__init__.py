"""Start latency on the target's clock: the benchmark, the runc wrapper, the latency report."""
