"""specstress: the run (config, engine, stages, analysis) and the commands on top of it."""
