"""Runs localstripe bound to 127.0.0.1 (its own launcher listens on every interface)."""

import argparse

from aiohttp import web
from localstripe.server import app, store

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, default=8420)
args = parser.parse_args()
store.try_load_from_disk()
web.run_app(app, host="127.0.0.1", port=args.port)
