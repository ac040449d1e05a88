"""Runs moto's server with DynamoDB requests applied one at a time.

DynamoDB applies each request atomically: a conditional write checks its condition and writes
in one step, so fifty concurrent `recordingsThisMonth < :limit` increments with ten units left
succeed exactly ten times. moto's threaded server runs requests on parallel threads with no lock
around an item's read-check-write, so two requests can both pass the same condition. The quota
tests then fail on moto, not on the code. One lock around DynamoDB's request handling restores
the guarantee; S3, SSM and SES keep their parallel threads. moto's DynamoDB work is Python under
the GIL either way, so the lock costs little."""

import sys
import threading

from moto.dynamodb.responses import DynamoHandler
from moto.server import main

_one_at_a_time = threading.Lock()
_call_action = DynamoHandler.call_action


def _atomic_call_action(self):
    with _one_at_a_time:
        return _call_action(self)


DynamoHandler.call_action = _atomic_call_action

if __name__ == "__main__":
    main(sys.argv[1:])
