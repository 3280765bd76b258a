"""Builds a Python transform into a Sluice component: `python -m sluice.build app.py -o app.wasm`.

Design note: componentize-py (pinned in `guest-sdk/python/requirements.txt`) snapshots a CPython
interpreter with the author's module and this SDK already imported, against the WIT world
`transformer`. The WIT is found with `--wit`, `SLUICE_WIT`, or next to this SDK in its Sluice
checkout (`wit/`). A build takes about 10 s and gives a component of about 18 MB.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

SDK_DIR = Path(__file__).resolve().parent.parent


def find_wit(given: str | None) -> Path:
    for candidate in (given, os.environ.get("SLUICE_WIT"), SDK_DIR.parent.parent / "wit"):
        if candidate and Path(candidate).exists():
            return Path(candidate).resolve()
    raise SystemExit(
        "error: cannot find Sluice's WIT (wit/transform.wit): pass --wit PATH/TO/sluice/wit "
        "or set SLUICE_WIT"
    )


def find_componentize() -> str:
    beside = Path(sys.executable).parent / "componentize-py"
    if beside.exists():
        return str(beside)
    found = shutil.which("componentize-py")
    if found:
        return found
    raise SystemExit(
        "error: componentize-py is not installed: `pip install -r "
        f"{SDK_DIR / 'requirements.txt'}` (it pins the version Sluice is tested with)"
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m sluice.build", description=__doc__.splitlines()[0])
    p.add_argument("app", help="the transform's module file (app.py)")
    p.add_argument("-o", "--output", help="the component to write (default: APP.wasm)")
    p.add_argument("--wit", help="Sluice's wit/ directory")
    p.add_argument("-p", "--path", action="append", default=[],
                   help="more directories to import from (repeatable)")
    a = p.parse_args(argv)
    app = Path(a.app).resolve()
    if not app.is_file() or app.suffix != ".py":
        raise SystemExit(f"error: {a.app}: expected a Python module file (NAME.py)")
    out = Path(a.output or app.with_suffix(".wasm").name).resolve()
    cmd = [find_componentize(), "-d", str(find_wit(a.wit)), "-w", "transformer", "componentize",
           "-p", str(app.parent), "-p", str(SDK_DIR)]
    for extra in a.path:
        cmd += ["-p", str(Path(extra).resolve())]
    cmd += [app.stem, "-o", str(out)]
    r = subprocess.run(cmd)
    if r.returncode != 0:
        print(f"error: componentize-py failed (exit {r.returncode}) building {app}", file=sys.stderr)
        return r.returncode
    print(f"built {out} ({out.stat().st_size / 1e6:.1f} MB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
