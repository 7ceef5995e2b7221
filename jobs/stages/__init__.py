"""One module per pipeline stage (its settings, prompt, parser, schema, plan and run), the `Stage`
record and context they share (base.py) and the registry that lists them in order."""
