import pytest
import requests

from local.simulator import start_simulator

LATENCY = 0.2


@pytest.fixture(scope="session")
def simulator():
    sim = start_simulator(port=0, latency_min=LATENCY, latency_max=LATENCY)
    yield sim
    sim.stop()


@pytest.fixture()
def sim(simulator):
    """The shared simulator, reset (jobs cleared, startup config restored) before each test."""
    requests.post(simulator.url + "/_sim/reset", timeout=5).raise_for_status()
    return simulator
