"""The provider emulator: an honest stand-in for OpenAI, Anthropic and Gemini on loopback.

Start it with `server.EmulatorServer(config)` (background thread) or `server.serve(config, host, port)`;
its settings (`config.py`) import no server, so the run's config schema can use them.
"""
