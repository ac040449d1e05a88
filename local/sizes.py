"""Prints each Lambda binary's size and the size of the zip that would be deployed.

Reads <target dir>/lambda/<function>/bootstrap, as `cargo lambda build --release` leaves them.
"""

import io
import os
import pathlib
import sys
import zipfile

repo = pathlib.Path(__file__).resolve().parent.parent
root = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", repo / "target")) / "lambda"


def zipped_size(path):
    """Bytes of the deployment zip holding `path` as `bootstrap`."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.write(path, "bootstrap")
    return len(buffer.getvalue())


def main():
    binaries = sorted(root.glob("*/bootstrap"))
    if not binaries:
        sys.exit(f"no binaries under {root}: run `make build` first")
    print(f"{'function':<16}{'binary':>12}{'zip':>12}")
    for path in binaries:
        print(f"{path.parent.name:<16}{path.stat().st_size / 1e6:>10.2f}MB{zipped_size(path) / 1e6:>10.2f}MB")


if __name__ == "__main__":
    main()
