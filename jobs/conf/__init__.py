"""Run configuration: the schema of a run, its loader and the checks that name a bad key."""
