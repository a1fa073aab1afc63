"""Development tools, never imported by the runtime: the local broker, benchmarks, simulators
and the demo."""
