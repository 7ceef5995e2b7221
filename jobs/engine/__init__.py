"""The fan-out engine, driver side: requests tables, dispatch to client actors, journal, drain, progress, provider batches."""
