"""Deliberately broken broker plugins, one per failure the core must report by name."""
