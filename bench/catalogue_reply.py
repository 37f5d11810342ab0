"""How long GET /api/nodes and /object_info take once their reply is kept (graphflow.server.json_api's
RegistryReply: each request still lists every choice's options, to see whether the reply changed),
against making and encoding the reply afresh with each folder walked once (the reference, measured
in the same run; every request did that before, walking the folders once per input, ~500 times).
With empty model folders, then with a few hundred model files in subfolders.

    .venv/bin/python bench/catalogue_reply.py [--repeat 7] [--files 600]

Prints the median of each and the ratio to the reference.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

KINDS = {"loras": 0.6, "checkpoints": 0.2, "controlnet": 0.1, "vae": 0.05, "upscale_models": 0.05}  # share of files


def median_ms(call, repeat: int) -> float:
    call()  # the first remakes it (a kept reply) or warms the folders' listings (the reference)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def _afresh(make, registry, dumps) -> bytes:
    from graphflow.folders import walks_remembered

    with walks_remembered():
        return dumps(make(registry)).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--files", type=int, default=600, help="model files written for the second round")
    args = parser.parse_args()

    from graphflow.folders import configure
    from graphflow.registry import Registry
    from graphflow.server.comfyui_object_info import object_info
    from graphflow.server.events import dumps
    from graphflow.server.json_api import RegistryReply

    home = Path(tempfile.mkdtemp(prefix="graphflow-catalogue-"))
    configure(home=home, models=home / "models")
    registry = Registry().load_builtin()
    for label in ("empty model folders", f"{args.files} model files"):
        if label != "empty model folders":
            for kind, share in KINDS.items():
                for i in range(int(args.files * share)):
                    folder = home / "models" / kind / f"set{i % 10}"
                    folder.mkdir(parents=True, exist_ok=True)
                    (folder / f"model{i}.safetensors").write_bytes(b"{}")
        for route, make in (("/api/nodes", Registry.catalogue), ("/object_info", object_info)):
            afresh = median_ms(lambda: _afresh(make, registry, dumps), args.repeat)
            reply = RegistryReply(make, by_key=make is object_info)  # as the server makes it
            kept = median_ms(lambda: reply.current(registry), args.repeat)
            print(f"{route:13s} {label:20s} made afresh {afresh:7.1f} ms (reference)  kept {kept:6.1f} ms  "
                  f"{kept / afresh:5.2f}x")


if __name__ == "__main__":
    main()
