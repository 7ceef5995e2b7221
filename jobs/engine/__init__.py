"""The fan-out engine, driver side: requests tables, dispatch to client actors, their logs (recovery), drain, progress, provider batches."""
