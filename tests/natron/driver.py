"""Runs inside NatronRenderer (its own Python 3, Natron's API in ``app``): builds the graph a
test describes and carries out its steps, writing what happened as JSON.

The test writes a spec file and names it in ``FACEPLATE_NATRON_SPEC``::

    {"nodes": [{"id": "read", "reader": "/plate.####.exr", "params": {...}},
               {"id": "swap", "plugin": "org.faceplate.Swap", "params": {"model": "/m"}},
               {"id": "out", "writer": "/out/f.####.exr", "params": {"bitDepth": "32f"}}],
     "links": [["swap", 0, "read"], ["out", 0, "swap"]],
     "steps": [{"render": "out", "first": 1001, "last": 1003},
               {"trigger": "swap", "param": "analyzeSequence"},
               {"set": "swap", "param": "model", "value": ""},
               {"kill_worker_after": 0.0, "for": 0.0, "when": "/out/f.1001.exr"},
               {"sleep": 1.0},
               {"describe": "swap"}],
     "settings": {"nParallelRenders": 2},
     "result": "/tmp/result.json"}

``settings`` sets Natron's own preferences (script names of its Preferences parameters) before
the graph is built. Parameter values: a choice takes its option's name (or its index), the
others their value.
Each step's outcome (ok, error text, seconds) goes into the result file, written after every
step, so a crash leaves the steps done behind it. Only Natron's public Python API is used.
"""

import json
import os
import signal
import threading
import time
import traceback

with open(os.environ["FACEPLATE_NATRON_SPEC"]) as _f:
    SPEC = json.load(_f)
RESULT = {"steps": [], "nodes": {}}


def save():
    with open(SPEC["result"] + ".tmp", "w") as f:
        json.dump(RESULT, f, indent=1)
    os.replace(SPEC["result"] + ".tmp", SPEC["result"])


def set_param(node, name, value):
    p = node.getParam(name)
    if p is None:
        owner = node.getScriptName() if hasattr(node, "getScriptName") else "settings"
        raise KeyError(f"{owner} has no parameter {name}")
    if type(p).__name__ == "ChoiceParam" and isinstance(value, str):
        options = [p.getOption(i) for i in range(p.getNumOptions())]
        if value not in options:
            raise ValueError(f"{name}: {value!r} is not one of {options}")
        value = options.index(value)
    p.setValue(value)


def plain(v):
    """A parameter value as JSON: Natron's 2D/3D tuples become lists."""
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    parts = [getattr(v, a) for a in ("x", "y", "z", "w", "r", "g", "b", "a") if hasattr(v, a)]
    return parts or str(v)


def describe(node):
    """Every parameter of a node: type, value, default, choices, page, visibility."""
    out = {}
    for p in node.getParams():
        d = {"type": type(p).__name__, "label": p.getLabel(), "visible": p.getIsVisible()}
        try:
            d["value"] = plain(p.get())
        except Exception:
            d["value"] = None
        try:
            d["default"] = plain(p.getDefaultValue())
        except Exception:
            d["default"] = None
        if d["type"] == "ChoiceParam":
            d["choices"] = [p.getOption(i) for i in range(p.getNumOptions())]
        out[p.getScriptName()] = d
    pages = [p for p in node.getParams() if type(p).__name__ == "PageParam"]
    return {"params": out, "pages": [p.getScriptName() for p in pages],
            "plugin": node.getPluginID(), "label": node.getLabel()}


def worker_pids():
    """faceplate-worker processes that are children of this NatronRenderer."""
    me, pids = os.getpid(), []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
            comm = stat[stat.index("(") + 1:stat.rindex(")")]
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        except (OSError, ValueError):
            continue
        if comm.startswith("faceplate-work") and ppid == me:
            pids.append(int(d))
    return pids


def worker_memory():
    """Peak and current resident memory (MiB) of each faceplate-worker of this process."""
    out = {}
    for pid in worker_pids():
        try:
            with open(f"/proc/{pid}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            out[str(pid)] = {k: int(fields[k].split()[0]) / 1024 for k in ("VmHWM", "VmRSS")}
        except (OSError, KeyError, ValueError):
            pass
    return out


def kill_later(seconds, for_seconds=0.0, when=None):
    """After ``seconds`` (counted once the file ``when`` exists, if given: a frame the render
    has written), SIGKILL every faceplate-worker of this process; with ``for_seconds``, go on
    killing each new one for that long (a worker that keeps dying)."""
    def run():
        give_up = time.time() + 120.0
        while when and not os.path.exists(when) and time.time() < give_up:
            time.sleep(0.005)
        time.sleep(seconds)
        end, killed = time.time() + for_seconds, []
        while True:
            for pid in worker_pids():
                if pid not in killed:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            if time.time() >= end:
                break
            time.sleep(0.02)
        RESULT.setdefault("killed", []).append(killed)
    t = threading.Thread(target=run)
    t.daemon = True
    t.start()


if SPEC.get("settings"):
    import NatronEngine

    for _name, _value in SPEC["settings"].items():
        set_param(NatronEngine.natron.getSettings(), _name, _value)

nodes = {}
for n in SPEC["nodes"]:
    if "reader" in n:
        node = app.createReader(n["reader"])  # noqa: F821 - Natron's global
    elif "writer" in n:
        node = app.createWriter(n["writer"])  # noqa: F821
    else:
        node = app.createNode(n["plugin"])  # noqa: F821
    nodes[n["id"]] = node
for dst, k, src in SPEC.get("links", []):
    if not nodes[dst].connectInput(k, nodes[src]):
        raise RuntimeError(f"cannot connect {dst} input {k} to {src}")
for n in SPEC["nodes"]:
    for name, value in n.get("params", {}).items():
        set_param(nodes[n["id"]], name, value)
for n in SPEC["nodes"]:
    if "roto" in n:  # shapes on a Roto node: rectangles [x, y, size] in canonical coords
        ctx = nodes[n["id"]].getRotoContext()
        for x, y, size in n["roto"]:
            ctx.createRectangle(x, y, size, 0)
save()

for step in SPEC.get("steps", []):
    rec = {"step": step, "ok": True, "error": None, "pids_before": worker_pids()}
    t0 = time.time()
    try:
        if "render" in step:
            app.render(nodes[step["render"]], step["first"], step["last"])  # noqa: F821
        elif "trigger" in step:
            nodes[step["trigger"]].getParam(step["param"]).trigger()
        elif "set" in step:
            set_param(nodes[step["set"]], step["param"], step["value"])
        elif "kill_worker_after" in step:
            kill_later(step["kill_worker_after"], step.get("for", 0.0), step.get("when"))
        elif "sleep" in step:
            time.sleep(step["sleep"])
        elif "describe" in step:
            RESULT["nodes"][step["describe"]] = describe(nodes[step["describe"]])
    except Exception:
        rec["ok"] = False
        rec["error"] = traceback.format_exc()
    rec["seconds"] = time.time() - t0
    rec["pids_after"] = worker_pids()
    rec["worker_memory_mib"] = worker_memory()
    RESULT["steps"].append(rec)
    save()
if not SPEC.get("end_render"):
    # NatronRenderer renders every writer again when a script without -w ends: disconnect
    # them unless the test wants that render (destroying a writer hangs Natron 2.5 at exit).
    for n in SPEC["nodes"]:
        if "writer" in n:
            nodes[n["id"]].disconnectInput(0)
RESULT["done"] = True
save()
