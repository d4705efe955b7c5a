"""Hello-world ASGI throughput under every CPython this machine has: rotor serving a virtualenv
of each (its plugin from scripts/build-pythons.sh), with uvicorn under Debian's 3.11 (where it
is installed) as the anchor, in one run."""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.load import measure
from bench.report import table
from bench.servers import APPS, ROOT, rotor_app, uvicorn_app

UVICORN = "uvicorn --workers (Debian 3.11)"


def pyenv_pythons():
    """{minor: interpreter} of the pyenv root's CPython 3.9-3.13 builds that are present."""
    root = os.environ.get("PYENV_ROOT") or subprocess.run(
        ["pyenv", "root"], capture_output=True, text=True).stdout.strip() or \
        str(Path.home() / ".pyenv")
    found = {}
    for minor in range(9, 14):
        for exe in sorted(Path(root, "versions").glob(f"3.{minor}.*/bin/python3.{minor}")):
            found[minor] = exe
    return found


def scenario_pythons(args):
    """rotor under each Python present (2 workers each), uvicorn under Debian's 3.11 anchoring."""
    pythons = pyenv_pythons()
    plugins = None
    if pythons:
        out = subprocess.run([str(ROOT / "scripts" / "build-pythons.sh")], capture_output=True,
                             text=True, cwd=ROOT)
        if out.returncode != 0:
            print(f"pythons: building the plugins failed:\n{out.stderr[-2000:]}", file=sys.stderr)
            return
        plugins = ROOT / out.stdout.strip().splitlines()[-1]
    with tempfile.TemporaryDirectory(prefix="rotor-bench-venvs-") as tmp:
        servers = [uvicorn_app(UVICORN, APPS, "raw_app:app", 2),
                   rotor_app("rotor (Debian 3.11)", APPS, "raw_app:app", 2)]
        for minor, exe in pythons.items():
            venv = Path(tmp) / f"venv3{minor}"
            subprocess.run([str(exe), "-m", "venv", "--without-pip", str(venv)], check=True)
            version = exe.parent.parent.name
            servers.append(rotor_app(f"rotor ({version} venv)", APPS, "raw_app:app", 2,
                                     env={"VIRTUAL_ENV": str(venv),
                                          "ROTOR_PLUGIN_DIR": str(plugins)}))
        rows = measure(servers, args)
    table("pythons: hello-world ASGI app under each CPython present, 2 workers each", rows,
          UVICORN, args.rounds)
