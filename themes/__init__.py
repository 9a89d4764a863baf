"""TUI themes shipped with ponder, one TOML file each (loaded by ponder.app.tui.themes)."""
