# The leak report of a traced worker (--leak-report, docs/leaks.md). Compiled into the rotor
# binary and run as the module `_rotor_leak` only in the worker the master chose: the others
# never import it, nor tracemalloc. Its C++ half (workers/asgi/leak_report.cpp) calls start()
# as the worker becomes ready, baseline() once the warm-up is served and report() as the worker
# retires, after its last response.
import gc
import json
import linecache
import os
import re
import sysconfig
import time
import tracemalloc

LOG_SITES = 10  # growth sites logged, one line each
FILE_SITES = 50  # growth sites in the JSON file
LOG_GARBAGE_TYPES = 5  # types of gc.garbage named in the log line

# What is no growth of the app's, by the frame that allocated it: tracemalloc's snapshots,
# rotor's modules (compiled under "rotor/", this reporter among them), the import machinery.
_NOT_THE_APPS = (tracemalloc.__file__, "rotor/", "<frozen importlib._bootstrap")
_STDLIB = tuple(sorted({os.path.join(p, "") for key in ("stdlib", "platstdlib")
                        for p in (sysconfig.get_paths()[key],
                                  os.path.realpath(sysconfig.get_paths()[key]))}))


class _Trace:
    """What the traced worker keeps between start() and report()."""

    def __init__(self, depth, generation):
        self.depth, self.generation = depth, generation
        self.started = time.time()
        self.base = self.base_gc = None
        self.base_kind = "ready"  # until the warm-up is served: everything since start()
        self.base_requests = 0
        self.base_error = ""  # why the warm-up's baseline could not be taken


_trace = None


def _gc_totals():
    """(collections, collected, uncollectable) of every generation since the process began."""
    stats = gc.get_stats()
    return tuple(sum(s[key] for s in stats) for key in ("collections", "collected",
                                                         "uncollectable"))


def start(depth, generation):
    """Traces every allocation from now on, `depth` frames each."""
    global _trace
    tracemalloc.start(depth)
    _trace = _Trace(depth, generation)
    _trace.base, _trace.base_gc = tracemalloc.take_snapshot(), _gc_totals()


def baseline(requests):
    """The warm-up is served (`requests` responses): what the worker holds now is the
    reference. Collected first, as at the report: garbage waiting for the GC is no growth.
    Run from the event loop: a failure is kept for the report (the baseline stays "ready")."""
    try:
        gc.collect()
        _trace.base, _trace.base_gc = tracemalloc.take_snapshot(), _gc_totals()
        _trace.base_kind, _trace.base_requests = "warmup", requests
    except Exception as exc:
        _trace.base_error = f"{type(exc).__name__}: {exc}"


# -- where an allocation belongs -----------------------------------------------------------------
def _kind(filename):
    """'app' (the app's own code), 'library' (site-packages), 'stdlib', or 'internal' (rotor's
    modules, frozen or generated code, a frame tracemalloc could not name)."""
    if filename.startswith(("<", "rotor/")):
        return "internal"
    if "/site-packages/" in filename or "/dist-packages/" in filename:
        return "library"
    if filename.startswith(_STDLIB):
        return "stdlib"
    return "app"


def _site(frames):
    """The frame a growth is reported at: the innermost frame of the app's own code, else of a
    library, else the innermost frame. `frames` run from the outermost to the innermost."""
    for wanted in ("app", "library"):
        for frame in reversed(frames):
            if _kind(frame.filename) == wanted:
                return frame
    return frames[-1]


def _key(traceback):
    """The traceback without rotor's frames and the event loop's beneath the app: a request
    started by rotor's eager start and one carried on in a task are the same place."""
    frames = [f for f in traceback if not f.filename.startswith("rotor/")] or list(traceback)
    while len(frames) > 1 and _kind(frames[0].filename) in ("stdlib", "internal"):
        frames.pop(0)
    return tuple((f.filename, f.lineno) for f in frames)


def _group(diffs):
    """StatisticDiffs by traceback, merged by _key: [size, count, frames] that grew, largest
    first."""
    groups = {}
    for d in diffs:
        # Filtered here, not with Snapshot.filter_traces: a diff per traceback, not per block.
        if not d.size_diff or d.traceback[-1].filename.startswith(_NOT_THE_APPS):
            continue
        key = _key(d.traceback)
        g = groups.setdefault(key, [0, 0, None])
        g[0] += d.size_diff
        g[1] += d.count_diff
        if g[2] is None or len(d.traceback) > len(g[2]):
            g[2] = list(d.traceback)
    grown = [g for g in groups.values() if g[0] > 0]
    grown.sort(key=lambda g: g[0], reverse=True)
    return grown


# -- naming a frame --------------------------------------------------------------------------------
_DEF = re.compile(r"\s*(?:async\s+def|def|class)\s+(\w+)")
_names = {}  # (filename, line) -> qualified name


def _function_at(filename, lineno):
    """The qualified name of the function (or class) holding `lineno`, "" at module level or
    when the source cannot be read: the enclosing `def`s and `class`es, found by indentation."""
    key = (filename, lineno)
    if key not in _names:
        lines = linecache.getlines(filename)
        names = []
        indent = _indent(lines[lineno - 1]) if 0 < lineno <= len(lines) else 0
        for line in reversed(lines[:lineno - 1] if indent else []):
            if not line.strip() or line.lstrip().startswith("#") or _indent(line) >= indent:
                continue
            indent = _indent(line)
            m = _DEF.match(line)
            if m:
                names.append(m.group(1))
            if not indent:
                break
        _names[key] = ".".join(reversed(names))
    return _names[key]


def _indent(line):
    return len(line) - len(line.lstrip())


def _path(filename):
    """Relative to the working directory when under it (--chdir), as the app's modules are."""
    cwd = os.path.join(os.getcwd(), "")
    return filename[len(cwd):] if filename.startswith(cwd) else filename


def _frame(frame):
    return {"file": _path(frame.filename), "line": frame.lineno,
            "function": _function_at(frame.filename, frame.lineno),
            "code": linecache.getline(frame.filename, frame.lineno).strip()}


def _kib(size):
    return round(size / 1024, 1)


# -- the report ------------------------------------------------------------------------------------
def _garbage():
    """gc.garbage: what the collector found unreachable and could not free (or, under
    gc.DEBUG_SAVEALL, everything it found): its size and its objects' types, most first."""
    types = {}
    for obj in gc.garbage:
        name = type(obj).__qualname__
        types[name] = types.get(name, 0) + 1
    return {"count": len(gc.garbage),
            "types": dict(sorted(types.items(), key=lambda t: t[1], reverse=True))}


def _build(requests):
    """The report as data: what the JSON file holds and the log lines are made of."""
    gc_end = _gc_totals()  # before our own collection below
    gc.collect()
    now = tracemalloc.take_snapshot()
    traced = requests - _trace.base_requests
    collections, collected, uncollectable = (e - b for e, b in zip(gc_end, _trace.base_gc))
    traced_kib, overhead_kib = (_kib(tracemalloc.get_traced_memory()[0]),
                                _kib(tracemalloc.get_tracemalloc_memory()))
    tracemalloc.stop()  # what follows need not be traced, nor slowed down by it
    grown = _group(now.compare_to(_trace.base, "traceback"))
    sites = []
    for rank, (size, count, frames) in enumerate(grown[:FILE_SITES], 1):
        site = _frame(_site(frames))
        sites.append({"rank": rank, "size_kib": _kib(size), "count": count, "site": site,
                      "traceback": [_frame(f) for f in reversed(frames)]})  # innermost first
    return {
        "pid": os.getpid(), "generation": _trace.generation,
        "started": _iso(_trace.started), "reported": _iso(time.time()),
        "requests": requests, "traced_requests": traced, "baseline": _trace.base_kind,
        "baseline_error": _trace.base_error,
        "depth": _trace.depth,
        "growth_kib": _kib(sum(g[0] for g in grown)),
        "traced_kib": traced_kib, "tracemalloc_kib": overhead_kib,
        "gc": {"collections": collections, "collected": collected,
               "collected_per_request": round(collected / traced, 2) if traced > 0 else 0,
               "uncollectable": uncollectable, "garbage": _garbage()},
        "sites": sites,
    }


def _iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _site_line(s, r):
    site = s["site"]
    fields = [("event", "leak-site"), ("rank", s["rank"]), ("size_kib", s["size_kib"]),
              ("count", s["count"]), ("site", f"{site['file']}:{site['line']}")]
    if site["function"]:
        fields.append(("function", site["function"]))
    fields += [("code", site["code"][:100]), ("pid", r["pid"]), ("generation", r["generation"]),
               ("requests", r["requests"])]
    return fields


def _summary_line(r, path):
    g = r["gc"]
    types = ",".join(list(g["garbage"]["types"])[:LOG_GARBAGE_TYPES])
    fields = [("event", "leak-report"), ("pid", r["pid"]), ("generation", r["generation"]),
              ("requests", r["requests"]), ("traced_requests", r["traced_requests"]),
              ("baseline", r["baseline"])]
    if r["baseline_error"]:
        fields.append(("baseline_error", r["baseline_error"]))
    fields += [("growth_kib", r["growth_kib"]), ("sites", len(r["sites"])),
               ("gc_collected_per_request", g["collected_per_request"]),
               ("gc_collections", g["collections"]), ("gc_uncollectable", g["uncollectable"]),
               ("gc_garbage", g["garbage"]["count"])]
    if types:
        fields.append(("gc_garbage_types", types))
    fields += [("tracemalloc_kib", r["tracemalloc_kib"])]
    if path:
        fields.append(("file", path))
    return fields


def _write(directory, r):
    """DIR/leak-PID-TIME.json, complete or not at all (written aside, then renamed)."""
    name = f"leak-{r['pid']}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    path = os.path.join(directory, name)
    aside = path + ".tmp"
    with open(aside, "w") as f:
        json.dump(r, f, indent=1)
        f.write("\n")
    os.replace(aside, path)
    return path


def report(requests, directory):
    """The report after `requests` responses: [(level, [(key, value), ...])], the lines to
    log, the largest growth first and the summary last. Tracing stops."""
    started = time.monotonic()
    r = _build(requests)
    lines = [("info", _site_line(s, r)) for s in r["sites"][:LOG_SITES]]
    path, error = None, None
    if directory:
        try:
            path = _write(directory, r)
        except OSError as exc:
            error = f"{directory}: {exc.strerror or exc}"
    summary = _summary_line(r, path)
    summary.append(("took_ms", round((time.monotonic() - started) * 1000)))
    lines.append(("info", summary))
    if error:
        lines.append(("warning", [("event", "leak-report-failed"), ("step", "file"),
                                  ("error", error)]))
    return [(level, [(k, str(v)) for k, v in fields]) for level, fields in lines]
