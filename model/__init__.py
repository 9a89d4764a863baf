"""Chat backends, K2's prompt and output formats, and GGUF inspection.

This package imports nothing else of ponder's (docs/architecture.md, "Layers").
"""
