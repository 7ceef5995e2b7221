"""`specstress estimate`: calls, tokens, dollars and wall-clock time of a run, before any spend."""
