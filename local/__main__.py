"""python -m local [--port 8081] [--moto-port 8091] [--sim-port 8090] [--ws-port 8082] [--param Key=Value ...]

The whole application locally (see local/README.md and local/devserver.py).
"""
import sys

from local.devserver import main

if __name__ == "__main__":
    sys.exit(main())
