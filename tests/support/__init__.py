"""Test support: the real Kafka + Redis the suite runs on, and polling helpers."""
