"""The provider emulator: an honest stand-in for OpenAI, Anthropic and Gemini on loopback.

Start it with `EmulatorServer(config)` (background thread) or `serve(config, host, port)`.
"""

from actors.emulator.config import AccountLimits, EmulatorConfig, FaultRates, LatencyModel
from actors.emulator.server import EmulatorServer, create_app, main_emulate, serve

__all__ = [
    "AccountLimits",
    "EmulatorConfig",
    "EmulatorServer",
    "FaultRates",
    "LatencyModel",
    "create_app",
    "main_emulate",
    "serve",
]
