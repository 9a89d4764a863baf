"""The ``ponder`` subcommands, one module each (``ponder NAME`` runs ``commands.NAME.run``)."""
