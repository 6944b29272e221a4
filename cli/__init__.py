"""The ``songgate`` command line (typer): one module per area, assembled in cli.main."""
