"""The demo `make run` starts: a fake outbound provider and a simulator of realistic customers."""
