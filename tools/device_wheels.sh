#!/usr/bin/env bash
# Wheels of what graphflow and its benches need that the lent GPU machine's image (Python 3.12,
# torch 2.11, transformers, safetensors, aiohttp, networkx, pillow, peft ... already there) lacks.
# Run here, where the package registries answer; the device call carries .whl (ignored by git)
# and bench/gpu.sh installs them there. Versions: the ones this project's venv is tested with.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
version() { "$PY" -c "import importlib.metadata as m; print(m.version('$1'))"; }
rm -rf .whl && mkdir .whl
for name in diffusers importlib_metadata pydantic pydantic_core annotated_types typing_inspection \
            torchsde trampoline ftfy wcwidth lpips spandrel; do
  spec="$name==$(version "$name")"
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl "$spec"
done
ls .whl
du -sh .whl
