"""One module per pipeline stage (its prompt, parser, schema, plan and run), the `Stage` record and
context they share (base.py) and the registry that lists them in order; each stage's settings,
load-time checks and `StageSpec` are under settings/, which loading a config imports alone."""
