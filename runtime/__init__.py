"""The agent: its loop, tools, events and everything that keeps a long run on track.

Imports ponder.model and ponder.sandbox, never the app or any UI library
(docs/architecture.md, "Layers").
"""
