"""A local, real Apache Kafka (KRaft) broker and redis-server for `make run` and the tests."""

from omnirouter.devstack.stack import DevStack, StackAddresses, StackStatus

__all__ = ["DevStack", "StackAddresses", "StackStatus"]
