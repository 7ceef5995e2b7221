"""Task personas: one module per pipeline task, each registering its persona on import.

The emulator recognises a task from the prompt text alone, as a real model would.
"""

from actors.emulator.tasks import (
    generator,  # noqa: F401  (registers the query generator and rewriter)
    labellers,  # noqa: F401  (registers the topic labeller and the refusal-degree judge)
    responder,  # noqa: F401  (answers the queries no other task persona claims)
    rubric,  # noqa: F401  (registers the rubric writer)
    scorer,  # noqa: F401  (registers the spectrum scorer)
    spec_judges,  # noqa: F401  (registers the compliance judge and the value lister)
)
