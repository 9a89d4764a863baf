"""Sandboxes that run the model's commands and file edits away from the user's machine.

This package imports nothing else of ponder's (docs/architecture.md, "Layers").
"""
