"""The contract report at the end of `make test`: every request the backend sent to a stand-in
that checks it against the real service's contract (.local/contracts/<service>.jsonl, one JSON
line a request: {"call": "POST /v1/customers", "problems": [...]}), counted per call, and every
request that broke the contract, named; for `aws`, every AWS call judged against the calling
function's policy in template.yaml (iam_check.py). Exits 1 when any broke its contract, or when a
service's log is empty (then nothing was checked, and a pass would mean nothing).

    report.py begin DIR SERVICE...   empties the logs before the tests
    report.py end DIR SERVICE...     the report
"""

import collections
import json
import pathlib
import sys


def begin(folder, services):
    folder.mkdir(parents=True, exist_ok=True)
    for service in services:
        (folder / f"{service}.jsonl").write_text("")


ROOT = pathlib.Path(__file__).resolve().parent.parent.parent


def end(folder, services):
    failed = False
    for service in services:
        path = folder / f"{service}.jsonl"
        if service == "aws":
            import iam_check

            failed |= bool(iam_check.check(ROOT / "template.yaml", folder.parent / "functions.json", path, ROOT / "README.md"))
            continue
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
        calls = collections.Counter(r["call"] for r in records)
        broken = [p for r in records for p in r["problems"]]
        print(f"{service}: {len(records)} requests checked, {len(calls)} kinds, {len(broken)} broke the contract")
        for call, count in sorted(calls.items()):
            print(f"  {count:5}  {call}")
        for problem, count in collections.Counter(broken).most_common():
            print(f"  BROKEN ({count}x) {problem}")
        failed |= bool(broken) or not records
        if not records:
            print(f"  no request reached the {service} stand-in: nothing was checked")
    return 1 if failed else 0


if __name__ == "__main__":
    command, folder, *services = sys.argv[1:]
    if command == "begin":
        begin(pathlib.Path(folder), services)
    else:
        sys.exit(end(pathlib.Path(folder), services))
