"""deploy/: the Dockerfile and the Kubernetes manifests name only what rotor has.

No container runtime runs on the build machines, so the image is not built here; instead every
flag, port and probe path the files name is fed to the real binary, and the image's run-time
packages are checked against what the binary links.
"""
import re
import shlex
import socket
import subprocess

import httpx
import pytest
import yaml

from conftest import BIN, ROOT, Rotor, wait_for

DEPLOY = ROOT / "deploy"
FLOW = ROOT / "examples" / "flow_executor"


def manifests():
    return list(yaml.safe_load_all((DEPLOY / "kubernetes" / "flow-executor.yaml").read_text()))


def container():
    deployment = next(d for d in manifests() if d["kind"] == "Deployment")
    return deployment, deployment["spec"]["template"]["spec"]["containers"][0]


def dockerfile():
    # Join continuation lines so that each instruction is one line.
    return re.sub(r"\\\n\s*", " ", (DEPLOY / "Dockerfile").read_text())


def instruction(name):
    return [l.split(None, 1)[1] for l in dockerfile().splitlines() if l.startswith(name + " ")]


def flag_value(args, flag):
    for i, a in enumerate(args):
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
        if a == flag:
            return args[i + 1]
    raise AssertionError(f"{flag} not in {args}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def local(args, app_port, metrics_port):
    """The container's arguments with its 0.0.0.0 ports moved to free local ones."""
    out = []
    for a in args:
        a = a.replace("0.0.0.0:8000", f"127.0.0.1:{app_port}")
        out.append(a.replace("0.0.0.0:9090", f"127.0.0.1:{metrics_port}"))
    return out


def test_manifest_arguments_are_a_valid_rotor_configuration():
    _, c = container()
    out = subprocess.run([str(BIN), *c["args"], "--check-config"], cwd=FLOW,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_manifest_ports_are_the_ones_rotor_binds():
    deployment, c = container()
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert flag_value(c["args"], "--bind").endswith(f":{ports['http']}")
    assert flag_value(c["args"], "--metrics-bind").endswith(f":{ports['metrics']}")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert c[probe]["httpGet"]["port"] in ports, probe
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == ports["metrics"]
    service = next(d for d in manifests() if d["kind"] == "Service")
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= set(ports)


def test_grace_period_covers_the_shutdown_delay_and_the_graceful_timeout():
    deployment, c = container()
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    delay = float(flag_value(c["args"], "--shutdown-delay"))
    graceful = float(flag_value(c["args"], "--graceful-timeout"))
    assert grace > delay + graceful + 1


def test_manifest_probes_and_scrape_path_answer_from_a_running_rotor(tmp_path):
    deployment, c = container()
    app_port, metrics_port = free_port(), free_port()
    r = Rotor(local(c["args"], app_port, metrics_port), tmp_path, bind=False, cwd=FLOW)
    try:
        r.start(1)
        base = f"http://127.0.0.1:{metrics_port}"
        paths = {c[p]["httpGet"]["path"]
                 for p in ("livenessProbe", "readinessProbe", "startupProbe")}
        paths.add(deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/path"])
        for path in sorted(paths):
            got = wait_for(lambda: _get(base + path), what=f"200 from {path}\n{r.log()}")
            assert got.status_code == 200, (path, got.status_code)
        assert "rotor_" in httpx.get(base + "/metrics", timeout=10).text
        assert httpx.get(f"http://127.0.0.1:{app_port}/health", timeout=10).status_code == 200
    finally:
        r.stop()


def _get(url):
    try:
        got = httpx.get(url, timeout=5)
    except httpx.HTTPError:
        return None
    return got if got.status_code == 200 else None


def test_dockerfile_runs_rotor_as_pid_1_as_a_non_root_user():
    assert instruction("ENTRYPOINT") == ['["rotor"]']
    assert instruction("STOPSIGNAL") == ["SIGTERM"]
    users = instruction("USER")
    assert users and users[-1] not in ("root", "0")
    assert len(instruction("FROM")) == 2, "a build stage and a runtime stage"


def test_dockerfile_command_is_a_valid_rotor_configuration():
    cmd = eval(instruction("CMD")[0])  # a JSON array: the exec form
    out = subprocess.run([str(BIN), *cmd, "--check-config"], cwd=FLOW,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    exposed = {int(p) for p in instruction("EXPOSE")[0].split()}
    binds = {int(flag_value(cmd, f).rsplit(":", 1)[1]) for f in ("--bind", "--metrics-bind")}
    assert binds == exposed


def test_dockerfile_build_steps_are_the_project_scripts():
    runs = " ".join(instruction("RUN"))
    for script in re.findall(r"scripts/[\w.-]+", runs):
        assert (ROOT / script).exists(), script
    # The build stage's install step must work as written (idempotent when all is present).
    first = next(r for r in instruction("RUN") if "install-deps.sh" in r)
    install = shlex.split(first.split("&&")[0])
    assert subprocess.run([str(ROOT / install[0]), *install[1:]], cwd=ROOT,
                          timeout=600).returncode == 0


def test_runtime_stage_installs_every_library_the_binary_links():
    packages = set()
    for r in instruction("RUN"):
        m = re.search(r"apt-get install [^&]*", r)
        if m:
            packages |= {w for w in m.group(0).split() if not w.startswith("-")}
    ldd = subprocess.run(["ldd", str(BIN)], capture_output=True, text=True).stdout
    for path in re.findall(r"=> (/\S+)", ldd):
        owner = subprocess.run(["dpkg", "-S", path.replace("/lib/", "/usr/lib/", 1)],
                               capture_output=True, text=True)
        if owner.returncode != 0:
            owner = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
        pkg = owner.stdout.split(":")[0]
        # The python image carries libc, libstdc++ and its own libpython and their needs.
        if re.match(r"(libc6|libgcc-s1|libstdc\+\+6|libpython3|zlib1g|libexpat1)$", pkg):
            continue
        assert pkg in packages, f"{path} comes from {pkg}, not installed in the runtime stage"
