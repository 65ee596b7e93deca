"""Flow parameters an operator tunes (pydantic, with safe defaults and documented limits)."""
