"""Reporters: each receives the runner's events and renders them for one audience."""
