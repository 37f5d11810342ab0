"""How long the light commands take from a cold process: `graphflow --help`, `nodes`, and `validate`
on the example workflows (which checks the bundled checkpoint's header and architecture). Goal:
each under 1 s on an idle machine. The reference measured in the same run is `import torch` alone,
which these commands no longer pay.

    .venv/bin/python bench/light_commands.py [--repeat 5]

Prints the median wall time of each command and its ratio to `import torch`.
"""

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

COMMANDS = {
    "graphflow --help": ["--help"],
    "graphflow nodes": ["nodes"],
    "graphflow validate workflows/txt2img.json": ["validate", "workflows/txt2img.json"],
    "graphflow validate workflows/controlnet.json": ["validate", "workflows/controlnet.json"],
    "graphflow validate workflows/flux_dev_comfyui_example.json": ["validate", "workflows/flux_dev_comfyui_example.json"],
}


def wall(argv: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    torch_import = wall([sys.executable, "-c", "import torch"], args.repeat)
    print(f"{'import torch (reference)':62s} {torch_import:6.2f} s")
    for label, argv in COMMANDS.items():
        t = wall([sys.executable, "-m", "graphflow.cli", *argv], args.repeat)
        verdict = "ok" if t < 1.0 else "over the 1 s goal"
        print(f"{label:62s} {t:6.2f} s  {t / torch_import:5.2f}x import torch  {verdict}")


if __name__ == "__main__":
    main()
