"""The paper's sweep, as its released data (`jifanz/stress_testing_model_spec`) names it.

Apart from the figures (`figures.py`, validated with pydantic), so that the config's defaults
take these names without loading a validator.
"""

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
