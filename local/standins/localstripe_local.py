"""Runs localstripe bound to 127.0.0.1 (its own launcher listens on every interface), in memory
only: upstream rewrites its whole store to a fixed /tmp/localstripe.pickle on every change and
reloads it at start, which is slow, is shared between instances, and fails to start on a file
another instance is writing. Each local stack starts with an empty Stripe; stack.sh recreates the
catalogue."""

import argparse

from aiohttp import web
from localstripe.resources import Store
from localstripe.server import app

Store.dump_to_disk = lambda self: None

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, default=8420)
args = parser.parse_args()
web.run_app(app, host="127.0.0.1", port=args.port)
