"""Routing: the right queue and agent for every case, with every decision explained."""
