"""Ops: Prometheus metrics on every process, the consumer lag monitor, the /ops dashboard."""
