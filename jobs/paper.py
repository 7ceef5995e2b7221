"""Names from the paper's released data (arXiv 2510.07686; `jifanz/stress_testing_model_spec`)."""

PAPER_MODELS: tuple[str, ...] = (
    "claude_opus_4",
    "claude_sonnet_4",
    "claude_3_7_sonnet",
    "claude_3_5_sonnet",
    "claude_opus_3",
    "gpt_4_1",
    "gpt_4_1_mini",
    "gpt_4o",
    "o3",
    "o4_mini",
    "gemini_2_5_pro",
    "grok_4",
)
"""The twelve model keys of the paper's sweep, as its released data names them."""

PAPER_SCENARIOS = 410_000
"""Scenarios the paper had after filtering ("more than 410,000", §2 of METHOD.md)."""
PAPER_DIVERSE = 300_000
"""Scenarios its δ-diverse selection kept (δ = 0.4 on Gemini embeddings: "about 300,000")."""
DIVERSE_SHARE = PAPER_DIVERSE / PAPER_SCENARIOS
"""The share of scenarios selection keeps (~0.73): what the estimate expects before a run's own
diversity stage has counted it."""
