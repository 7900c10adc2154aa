"""The agent desktop: sign-in, queues and offers, the case with its whole story, live updates."""
