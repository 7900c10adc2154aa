"""omnirouter: every channel a customer uses, one customer, one story, routed to the right agent."""

__version__ = "0.1.0"

__all__ = ["__version__"]
