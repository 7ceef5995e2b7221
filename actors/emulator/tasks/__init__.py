"""Task personas: one module per pipeline task, each registering its persona on import.

The emulator recognises a task from the prompt text alone, as a real model would.
"""
