"""Command line: one module per subcommand (readbench.cli.main builds the parser)."""
