"""ClassCord: a wire-compatible asyncio JSON-lines classroom chat server."""

__version__ = "1.0.0"
