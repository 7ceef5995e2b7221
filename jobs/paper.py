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
