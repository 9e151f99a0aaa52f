"""The local stack: the whole application on one machine, no AWS account, no Docker.

The functions import the shared library from the layer's folder, as Lambda does from /opt/python.
"""
import sys
from pathlib import Path

_LAYER = str(Path(__file__).resolve().parents[1] / "layers" / "common")
if _LAYER not in sys.path:
    sys.path.insert(0, _LAYER)
