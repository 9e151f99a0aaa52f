"""Print a bearer token the local stack accepts: `python -m local.token --user alice [--admin] [--ttl 86400]`.

Prints only the token (so `TOKEN=$(make -s token USER=alice)` works). Works whether or not the
local stack is running: it signs with the same key file (`.local/jwt-signing-key.pem`, created
when missing), issuer and audience the stack checks (see local/auth.py).
"""
from __future__ import annotations

import argparse
import sys

from local import auth


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.token", description=__doc__.splitlines()[0])
    parser.add_argument("--user", required=True, help="the user id (the token's sub)")
    parser.add_argument("--admin", action="store_true", help=f"put the user in the '{auth.ADMIN_GROUP}' group")
    parser.add_argument("--ttl", type=int, default=86400, help="seconds the token is valid (default 86400)")
    args = parser.parse_args(argv)
    if not args.user.strip():
        parser.error("--user must not be empty")
    print(auth.mint(args.user, admin=args.admin, ttl=args.ttl))
    return 0


if __name__ == "__main__":
    sys.exit(main())
