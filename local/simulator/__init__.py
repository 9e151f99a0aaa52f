"""Provider simulator: a faithful local double of DashScope and an OpenAI-compatible Images API.

    from local.simulator import start_simulator
    sim = start_simulator(port=0, latency_min=0.2, latency_max=0.2)
    ...  # sim.url, sim.port, sim.config
    sim.stop()

or `python -m local.simulator --port 8090`. See README.md.
"""
from .server import (
    DASHSCOPE_ERRORS,
    RunningSimulator,
    SimConfig,
    Simulator,
    parse_directives,
    start_simulator,
    strip_directives,
)

__all__ = [
    "DASHSCOPE_ERRORS",
    "RunningSimulator",
    "SimConfig",
    "Simulator",
    "parse_directives",
    "start_simulator",
    "strip_directives",
]
