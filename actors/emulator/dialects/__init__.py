"""The emulator's wire formats, one module per provider."""
