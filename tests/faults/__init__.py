"""Fault injection on the real local stack: SIGKILLed workers, broker and Redis restarts."""
