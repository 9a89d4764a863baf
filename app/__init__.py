"""ponder's frontends: the CLI, configuration, the Textual TUI and the line interface."""
