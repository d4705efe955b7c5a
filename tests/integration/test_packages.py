"""The packages scripts/package.sh makes from build/: the Debian package (lintian-clean, unpacked
into a scratch root where its binary serves) and one wheel per CPython version that has a plugin
(installed with pip into a virtualenv of that version, where its rotor serves the virtualenv's app
with the virtualenv's interpreter). package.sh runs once per session."""
import base64
import csv
import gzip
import hashlib
import io
import os
import re
import shutil
import signal
import subprocess
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from conftest import BIN, ROOT, Rotor, DEADLINE
from test_python_version import other_python

DEBIAN_PYTHON = "/usr/bin/python3"


def python_version(python):
    return subprocess.run([str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                          capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope="session")
def packages(tmp_path_factory):
    out = tmp_path_factory.mktemp("packages")
    env = dict(os.environ, BUILD_DIR=str(BIN.parent))
    run = subprocess.run([str(ROOT / "scripts" / "package.sh"), "--out", str(out)],
                         capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, f"package.sh failed:\n{run.stdout}\n{run.stderr}"
    return out


@pytest.fixture(scope="session")
def deb(packages):
    debs = list(packages.glob("rotor_*.deb"))
    assert len(debs) == 1, f"expected one .deb in {sorted(packages.iterdir())}"
    return debs[0]


@pytest.fixture(scope="session")
def scratch_root(deb, tmp_path_factory):
    root = tmp_path_factory.mktemp("scratch-root")
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return root


def wheels(packages):
    """{'3.11': path} from the wheels' cpXY tags."""
    found = {}
    for whl in packages.glob("rotor-*.whl"):
        m = re.match(r"rotor-[^-]+-cp(\d)(\d+)-cp\d+-[^-]+\.whl$", whl.name)
        assert m, f"{whl.name} is not named as a wheel tagged for one CPython"
        found[f"{m.group(1)}.{m.group(2)}"] = whl
    return found


# An ASGI app that tells which interpreter runs it; needs nothing outside the standard library.
WHOAMI = '''
import json, sys

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = json.dumps({"executable": sys.executable, "prefix": sys.prefix,
                       "version": "%d.%d" % sys.version_info[:2]}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
'''


@pytest.fixture
def whoami_dir(tmp_path):
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "whoami.py").write_text(WHOAMI)
    return app_dir


def clean_env(**extra):
    """The test's environment without what would choose rotor's Python or options for it."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ROTOR_", "PYTHON", "LISTEN_")) and k != "VIRTUAL_ENV"}
    env.update(extra)
    return env


class PackagedRotor(Rotor):
    """A master started from `binary` (unpacked or pip-installed), not build/rotor."""

    def __init__(self, binary, args, tmp_path, env):
        self.log_path = Path(tmp_path) / f"rotor-{time.monotonic_ns()}.log"
        self.args = [str(binary)] + list(args) + ["-b", "127.0.0.1:0"]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=env, start_new_session=True)
        self.port = None


@pytest.fixture
def run_packaged(tmp_path):
    started = []

    def start(binary, *args, env=None):
        r = PackagedRotor(binary, args, tmp_path, env if env is not None else clean_env())
        started.append(r)
        return r.start(1)

    yield start
    for r in started:
        r.stop()


def whoami(run_packaged, binary, app_dir, env=None):
    r = run_packaged(binary, "--chdir", str(app_dir), "whoami:app", env=env)
    response = httpx.get(r.url("/"), timeout=DEADLINE)
    assert response.status_code == 200, response.text
    return response.json()


# The Debian package

def test_the_debian_package_has_no_lintian_errors(deb):
    if not shutil.which("lintian"):
        pytest.skip("lintian is not installed (scripts/install-deps.sh installs it)")
    run = subprocess.run(["lintian", "--tag-display-limit", "0", str(deb)],
                         capture_output=True, text=True, timeout=600)
    errors = [line for line in run.stdout.splitlines() if line.startswith("E:")]
    assert not errors, run.stdout + run.stderr


def test_the_debian_package_is_named_for_rotors_version_and_depends_on_what_it_links(deb):
    fields = subprocess.run(["dpkg-deb", "-f", str(deb), "Package", "Version", "Architecture",
                             "Depends"], capture_output=True, text=True, check=True).stdout
    control = dict(line.split(": ", 1) for line in fields.splitlines())
    version = subprocess.run([str(BIN), "--version"], capture_output=True, text=True).stdout
    assert control["Package"] == "rotor"
    assert control["Version"] == re.search(r"\d[\d.]*", version).group(0) + "-1"
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert control["Architecture"] == arch
    depends = {d.split()[0] for d in control["Depends"].split(", ")}
    assert {"libc6", "libuv1", "libstdc++6", "adduser"} <= depends, control["Depends"]
    # The plugin (or, before plugins, the binary itself) links Debian's libpython.
    assert f"libpython{python_version(DEBIAN_PYTHON)}" in depends, control["Depends"]


def test_the_debian_package_holds_the_generated_documents_and_the_units(scratch_root):
    man = scratch_root / "usr/share/man/man1/rotor.1.gz"
    page = gzip.decompress(man.read_bytes()).decode()
    assert page == subprocess.run([str(BIN), "--help-man"], capture_output=True, text=True,
                                  check=True).stdout
    assert page.startswith(".TH ROTOR 1")
    if shutil.which("man"):
        shown = subprocess.run(["man", "-l", str(man)], capture_output=True, text=True,
                               env=dict(os.environ, MANWIDTH="100", MANPAGER="cat"), timeout=60)
        assert shown.returncode == 0 and "--max-requests" in shown.stdout, shown.stderr
    completion = scratch_root / "usr/share/bash-completion/completions/rotor"
    assert completion.read_text() == subprocess.run(
        [str(BIN), "--help-bash-completion"], capture_output=True, text=True, check=True).stdout
    doc = scratch_root / "usr/share/doc/rotor"
    assert (doc / "copyright").read_text().startswith("Format: https://www.debian.org/")
    assert b"rotor (" in gzip.decompress((doc / "changelog.Debian.gz").read_bytes())
    service = (scratch_root / "usr/lib/systemd/system/rotor@.service").read_text()
    assert "ExecStart=/usr/bin/rotor " in service
    assert (scratch_root / "usr/lib/systemd/system/rotor@.socket").is_file()


def test_the_example_config_is_every_option_at_its_default_and_loads(scratch_root, tmp_path):
    example = scratch_root / "usr/share/doc/rotor/examples/rotor.toml"
    assert example.read_text() == (ROOT / "examples" / "rotor.toml").read_text(), \
        "examples/rotor.toml is stale: run scripts/update-options-table.sh"
    check = subprocess.run([str(BIN), "--check-config", "-c", str(example)], capture_output=True,
                           text=True, cwd=tmp_path, env=clean_env())
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_packaged_binaries_are_stripped(scratch_root):
    objects = [scratch_root / "usr/bin/rotor"] + list((scratch_root / "usr/lib/rotor").glob("*.so"))
    for path in objects:
        sections = subprocess.run(["readelf", "-S", "-W", str(path)], capture_output=True,
                                  text=True, check=True).stdout
        assert ".symtab" not in sections and ".debug_info" not in sections, path


def links_libpython(binary):
    needed = subprocess.run(["readelf", "-d", str(binary)], capture_output=True, text=True,
                            check=True).stdout
    return "libpython3" in needed


def test_the_debian_package_holds_the_plugin_for_debians_python_alone(scratch_root):
    plugins = sorted(p.name for p in (scratch_root / "usr/lib/rotor").glob("*"))
    expected = [f"rotor-python{python_version(DEBIAN_PYTHON)}.so"]
    # Before the Python side became a plugin the binary linked libpython and there was none.
    assert plugins == ([] if links_libpython(scratch_root / "usr/bin/rotor") else expected)


def test_the_unpacked_binary_serves_hello_and_an_asgi_app(scratch_root, run_packaged, whoami_dir):
    binary = scratch_root / "usr/bin/rotor"
    hello = run_packaged(binary, "-k", "hello")
    assert httpx.get(hello.url("/"), timeout=DEADLINE).text == "Hello, world!"
    # The ASGI worker runs Debian's python3, through the plugin in SCRATCH/usr/lib/rotor/ once
    # the Python side is a plugin.
    seen = whoami(run_packaged, binary, whoami_dir)
    assert seen["version"] == python_version(DEBIAN_PYTHON)
    assert Path(seen["prefix"]) == Path("/usr")


def fake_plugin(path, link_libpython=None):
    """A shared object named as a plugin: enough for package.sh, which only packs it."""
    stub = path.with_suffix(".c")
    stub.write_text("int rotor_plugin_stub(void) { return 0; }\n")
    libs = ["-Wl,--no-as-needed", f"-lpython{link_libpython}"] if link_libpython else []
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(path), str(stub)] + libs, check=True)


def test_each_plugin_gets_its_wheel_and_the_deb_only_debians(tmp_path):
    debian = python_version(DEBIAN_PYTHON)
    other = "3.12" if debian != "3.12" else "3.11"
    stage = tmp_path / "stage"
    (stage / "lib" / "rotor").mkdir(parents=True)
    (stage / "bin").mkdir()
    shutil.copy2(BIN, stage / "bin" / "rotor")
    fake_plugin(stage / "lib" / "rotor" / f"rotor-python{debian}.so", link_libpython=debian)
    fake_plugin(stage / "lib" / "rotor" / f"rotor-python{other}.so")
    out = tmp_path / "out"
    run = subprocess.run([str(ROOT / "scripts" / "package.sh"), "--stage", str(stage), "--out",
                          str(out)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    found = wheels(out)
    assert sorted(found) == sorted([debian, other])
    for version, whl in found.items():
        names = zipfile.ZipFile(whl).namelist()
        assert [n.rsplit("/", 1)[1] for n in names if n.endswith(".so")] == \
            [f"rotor-python{version}.so"], whl.name
    contents = subprocess.run(["dpkg-deb", "-c", str(next(out.glob("rotor_*.deb")))],
                              capture_output=True, text=True, check=True).stdout
    assert re.findall(r"\./usr/lib/rotor/(\S+)", contents) == [f"rotor-python{debian}.so"]


def test_packing_the_same_build_again_gives_the_same_bytes(packages, tmp_path):
    again = tmp_path / "again"
    env = dict(os.environ, BUILD_DIR=str(BIN.parent))
    subprocess.run([str(ROOT / "scripts" / "package.sh"), "--out", str(again)], check=True,
                   capture_output=True, env=env, timeout=600)
    first = sorted(p.name for p in packages.iterdir())
    assert sorted(p.name for p in again.iterdir()) == first
    for name in first:
        assert (again / name).read_bytes() == (packages / name).read_bytes(), name


# The wheels

def test_every_wheel_records_each_file_with_its_hash_and_keeps_the_binary_executable(packages):
    assert wheels(packages), "package.sh wrote no wheel"
    for version, whl in wheels(packages).items():
        with zipfile.ZipFile(whl) as z:
            names = set(z.namelist())
            record_name = next(n for n in names if n.endswith(".dist-info/RECORD"))
            rows = list(csv.reader(io.StringIO(z.read(record_name).decode())))
            assert {row[0] for row in rows} == names, whl.name
            for name, digest, size in rows:
                if name == record_name:
                    assert digest == size == ""
                    continue
                data = z.read(name)
                expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
                assert digest == "sha256=" + expected.decode(), name
                assert int(size) == len(data), name
            dist = record_name.split("/")[0][: -len(".dist-info")]
            script = z.getinfo(f"{dist}.data/scripts/rotor")
            assert (script.external_attr >> 16) & 0o777 == 0o755
            wheel = z.read(f"{dist}.dist-info/WHEEL").decode()
            tag = whl.name[len(dist) + 1: -len(".whl")]
            assert f"Tag: {tag}\n" in wheel and "Root-Is-Purelib: false\n" in wheel
            plugins = [n for n in names if n.startswith(f"{dist}.data/data/lib/rotor/")]
            assert plugins in ([], [f"{dist}.data/data/lib/rotor/rotor-python{version}.so"])


def pip_install(python, whl, venv):
    subprocess.run([str(python), "-m", "venv", str(venv)], check=True, timeout=300)
    run = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--no-index",
                          "--no-cache-dir", "--disable-pip-version-check", str(whl)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr


def check_wheel_serves_its_venv(python, version, packages, tmp_path, run_packaged, whoami_dir):
    whl = wheels(packages)[version]
    venv = tmp_path / f"venv{version}"
    pip_install(python, whl, venv)
    rotor = venv / "bin" / "rotor"
    assert rotor.is_file() and os.access(rotor, os.X_OK)
    if any(n.endswith(".so") for n in zipfile.ZipFile(whl).namelist()):
        assert (venv / "lib" / "rotor" / f"rotor-python{version}.so").is_file()
    # Run by its path, the virtualenv not activated, as a container's CMD runs it.
    seen = whoami(run_packaged, rotor, whoami_dir)
    assert Path(seen["prefix"]) == venv and Path(seen["executable"]).parent == venv / "bin"
    assert seen["version"] == version
    # Activated: `rotor` on the virtualenv's PATH is that one.
    path = f"{venv / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}"
    assert shutil.which("rotor", path=path) == str(rotor)
    seen = whoami(run_packaged, rotor, whoami_dir, env=clean_env(VIRTUAL_ENV=str(venv), PATH=path))
    assert Path(seen["prefix"]) == venv


def test_the_wheel_for_debians_python_serves_its_virtualenvs_app_with_its_interpreter(
        packages, tmp_path, run_packaged, whoami_dir):
    version = python_version(DEBIAN_PYTHON)
    assert version in wheels(packages), f"no wheel for Debian's python {version}"
    check_wheel_serves_its_venv(DEBIAN_PYTHON, version, packages, tmp_path, run_packaged,
                                whoami_dir)


def test_the_wheel_for_python_3_12_serves_a_3_12_virtualenvs_app_with_its_interpreter(
        packages, tmp_path, run_packaged, whoami_dir):
    python = other_python(12)
    if "3.12" not in wheels(packages):
        pytest.skip("no rotor-python3.12.so plugin was built, so package.sh made no cp312 wheel "
                    "(configure with -DROTOR_PYTHONS='/usr/bin/python3;" + str(python) + "')")
    check_wheel_serves_its_venv(python, "3.12", packages, tmp_path, run_packaged, whoami_dir)


def test_a_rotor_in_a_virtualenv_of_a_python_it_has_no_plugin_for_refuses_with_exit_4(tmp_path):
    python = other_python(12)
    venv = tmp_path / "venv312"
    subprocess.run([str(python), "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=300)
    rotor = venv / "bin" / "rotor"
    shutil.copy2(BIN, rotor)  # as a wheel for another version, forced in, would leave it
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "whoami.py").write_text(WHOAMI)
    proc = subprocess.Popen([str(rotor), "--chdir", str(app_dir), "-b", "127.0.0.1:0",
                             "whoami:app"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=clean_env(), start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("rotor served the 3.12 virtualenv's app instead of refusing it:\n"
                    + proc.communicate()[0])
    assert proc.returncode == 4, out
    assert str(venv / "bin" / "python") in out and "3.12" in out, out
    assert len(out.strip().splitlines()) == 1, out
