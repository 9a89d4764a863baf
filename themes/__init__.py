"""TUI themes shipped with ponder, one TOML file each (loaded by the TUI's themes module)."""
