"""Process figures from /proc: CPU seconds, resident memory, children."""
import os


def own_cpu_s(pid):
    """User + system CPU seconds of `pid` itself (not its children), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_s(pid):
    """User + system CPU seconds of `pid` and every process below it."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += own_cpu_s(p) or 0.0
        todo.extend(children(p))
    return total


def children(pid):
    """Pids whose parent is `pid` (every thread's children list; a /proc scan without it)."""
    kids = set()
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                kids.update(int(x) for x in f.read().split())
        return kids
    except FileNotFoundError:  # no CONFIG_PROC_CHILDREN, or pid is gone
        pass
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        kids.add(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return kids


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):  # ESRCH while it is being reaped
        pass
    return None
