"""Provider batch APIs in the run: routing per stage, durable batch records, polling and collection."""
