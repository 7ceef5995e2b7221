"""One module per pipeline stage: its prompt, parser, pyarrow schema and entry point."""
