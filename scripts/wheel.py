"""Writes a rotor wheel for one CPython version with the standard library alone.

A wheel is a zip (PEP 427): `rotor-VER.data/scripts/rotor` is the binary, which pip installs as
`<venv>/bin/rotor`; `rotor-VER.data/data/lib/rotor/rotor-python3.X.so` is the plugin for that
version, which lands in `<venv>/lib/rotor/`, where the binary looks (`<its dir>/../lib/rotor/`);
`rotor-VER.dist-info/` holds METADATA, WHEEL and RECORD (every file's sha256). The platform tag is
this machine's (`linux_x86_64`), not manylinux: the binary links Debian's libraries.

    python3 scripts/wheel.py --binary STAGE/bin/rotor --version 0.1.0 --python 3.11 \
        [--plugin STAGE/lib/rotor/rotor-python3.11.so] --out dist/
"""
import argparse
import base64
import hashlib
import os
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

SUMMARY = "pre-fork HTTP server supervisor for Python ASGI apps"


def platform_tag():
    return sysconfig.get_platform().replace("-", "_").replace(".", "_")


def wheel_tag(python):
    """('cp311', 'cp311', 'linux_x86_64') for python '3.11'."""
    major, minor = python.split(".")
    abi = f"cp{major}{minor}"
    return abi, abi, platform_tag()


def record_hash(data):
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def metadata(version, python):
    major, minor = python.split(".")
    return (f"Metadata-Version: 2.1\nName: rotor\nVersion: {version}\nSummary: {SUMMARY}\n"
            f"Requires-Python: >={major}.{minor},<{major}.{int(minor) + 1}\n"
            "Classifier: Operating System :: POSIX :: Linux\n"
            f"Classifier: Programming Language :: Python :: {major}.{minor}\n")


def wheel_file(tag):
    return ("Wheel-Version: 1.0\nGenerator: rotor scripts/wheel.py\nRoot-Is-Purelib: false\n"
            f"Tag: {'-'.join(tag)}\n")


def zip_time():
    """SOURCE_DATE_EPOCH when set (reproducible builds), else 1980-01-01, zip's first day."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if not epoch:
        return (1980, 1, 1, 0, 0, 0)
    return time.gmtime(max(int(epoch), 315532800))[:6]


def entries(binary, plugin, version, python):
    """(name in the wheel, bytes, unix mode) of every file, dist-info last, RECORD not yet."""
    data = f"rotor-{version}.data"
    info = f"rotor-{version}.dist-info"
    files = [(f"{data}/scripts/rotor", Path(binary).read_bytes(), 0o755)]
    if plugin:
        name = Path(plugin).name
        files.append((f"{data}/data/lib/rotor/{name}", Path(plugin).read_bytes(), 0o644))
    files.append((f"{info}/METADATA", metadata(version, python).encode(), 0o644))
    files.append((f"{info}/WHEEL", wheel_file(wheel_tag(python)).encode(), 0o644))
    return files


def record(files, record_name):
    lines = [f"{name},{record_hash(data)},{len(data)}" for name, data, _ in files]
    lines.append(f"{record_name},,")
    return ("\n".join(lines) + "\n").encode()


def write_wheel(binary, plugin, version, python, out):
    files = entries(binary, plugin, version, python)
    record_name = f"rotor-{version}.dist-info/RECORD"
    files.append((record_name, record(files, record_name), 0o644))
    path = Path(out) / f"rotor-{version}-{'-'.join(wheel_tag(python))}.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as whl:
        for name, data, mode in files:
            info = zipfile.ZipInfo(name, date_time=zip_time())
            info.external_attr = (0o100000 | mode) << 16  # a regular file with its permissions
            info.compress_type = zipfile.ZIP_DEFLATED
            whl.writestr(info, data)
    return path


def check_plugin(plugin, python):
    expected = f"rotor-python{python}.so"
    if plugin and Path(plugin).name != expected:
        sys.exit(f"wheel: plugin {plugin} is not {expected}, the plugin for Python {python}")


def main(argv=None):
    parser = argparse.ArgumentParser(description="Write a rotor wheel for one CPython version.")
    parser.add_argument("--binary", required=True, help="the rotor binary")
    parser.add_argument("--version", required=True, help="rotor's version, e.g. 0.1.0")
    parser.add_argument("--python", required=True, help="the CPython version, e.g. 3.11")
    parser.add_argument("--plugin", help="rotor-python3.X.so for that version (none: embedded)")
    parser.add_argument("--out", required=True, help="the directory to write the wheel to")
    args = parser.parse_args(argv)
    if not args.python.count(".") == 1 or not args.python.replace(".", "").isdigit():
        sys.exit(f"wheel: --python {args.python!r} is not a version like 3.11")
    check_plugin(args.plugin, args.python)
    print(write_wheel(args.binary, args.plugin, args.version, args.python, args.out))


if __name__ == "__main__":
    main()
