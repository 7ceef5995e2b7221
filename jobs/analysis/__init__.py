"""Analysis at scale: embeddings, δ-diverse selection, disagreement, weighted k-center, outliers."""
