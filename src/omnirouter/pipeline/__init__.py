"""Stream workers (faust-streaming): identity, cases, routing; thin wiring around pure logic."""

from omnirouter.pipeline.app import create_app

__all__ = ["create_app"]
