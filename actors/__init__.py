"""Workers at scale: provider clients, the shared rate limiter, the call store and the emulator."""
