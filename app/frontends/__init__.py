"""How a session is shown and answered: the TUI, line mode, headless runs (one-liners and CI),
ACP for editors, and Markdown export."""
