import gc
import os
import sys
from pathlib import Path

# One intra-op thread per process: the suite's tensors are tiny, and with servers, subprocesses
# and a browser running beside it, torch's thread pool oversubscribes the cores; measured 50x
# slower for a tiny UNet on a busy 2-core machine. Set before torch is imported; children inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# The suite computes in fp32 whatever the processor: tests compare against diffusers and
# transformers at 1e-4 and check bit-identity between runs, and "auto" (graphflow.device) would
# compute the diffusion model and text encoders in bf16 on a CPU with native bf16. The fast mode
# has its own tests (tests/test_cpu_fast_mode.py), which set the dtype themselves; any test runs
# in the fast mode with GRAPHFLOW_DTYPE=auto on the command line.
os.environ.setdefault("GRAPHFLOW_DTYPE", "fp32")
# transformers' tiktoken converter (the Qwen / Llama tokenizer tests' reference) caches every ranks
# file it reads under the file's path, and each run's files have new temp paths: no cache.
os.environ.setdefault("TIKTOKEN_CACHE_DIR", "")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def toy_registry():
    import toy_nodes
    from graphflow.registry import Registry

    registry = Registry()
    for cls in toy_nodes.TOY_NODES:
        registry.add(cls, source="tests")
    toy_nodes.runs.clear()
    return registry


@pytest.fixture
def tmp_folders(tmp_path):
    """Point the process-wide folders (models, inputs, outputs, temp) at a fresh temp dir."""
    from graphflow import folders as folders_module

    saved = dict(folders_module.folders.__dict__)
    configured = folders_module.configure(home=tmp_path)
    for sub in (configured.inputs, configured.outputs, configured.models):
        sub.mkdir(parents=True, exist_ok=True)
    yield configured
    folders_module.folders.__dict__.update(saved)


@pytest.fixture(scope="module")
def written_once(tmp_path_factory):
    """written_once(name, write) -> the path of a file `write(path)` wrote the first time this test
    file asked for `name` (one name, one writer), the same file after that: for fixtures that give
    each test copies of seeded test models, which take seconds to write and milliseconds to copy."""
    folder = tmp_path_factory.mktemp("written_once")

    def written(name: str, write) -> Path:
        path = folder / name
        if not path.exists():
            part = folder / f"partial-{name}"  # renamed when whole: a writer that fails leaves no file
            write(part)
            part.rename(path)
        return path

    return written


@pytest.fixture
def fonts(tmp_folders):
    """Pillow's own default font (Aileron, which it carries inside) written as models/fonts/aileron.ttf
    (the font-drawing packs' tests)."""
    from PIL import ImageFont

    folder = tmp_folders.models / "fonts"
    folder.mkdir(parents=True)
    (folder / "aileron.ttf").write_bytes(ImageFont.load_default(10).path.getvalue())
    return folder


def _fresh_manager(patch: pytest.MonkeyPatch):
    """A memory manager of its own, with no budget from the environment; offloaded at the end."""
    from graphflow import memory

    manager = memory.MemoryManager()
    patch.setattr(memory, "_manager", manager)
    for name in ("GRAPHFLOW_VRAM_BUDGET_GB", "GRAPHFLOW_RAM_BUDGET_GB"):
        patch.delenv(name, raising=False)
    yield manager
    manager.offload_all()  # removes the streaming hooks from shared (cached) models


@pytest.fixture
def fresh_manager(monkeypatch):
    """A memory manager of the test's own, with no budget from the environment."""
    yield from _fresh_manager(monkeypatch)


@pytest.fixture
def cpu0_device(monkeypatch):
    """The compute device named "cpu:0": a torch.device unequal to the tensors' "cpu", as CUDA's "cuda"
    is to a tensor's cuda:0, and to the memory manager a device apart from the offload device, as a GPU."""
    from graphflow.device import compute_device

    monkeypatch.setenv("GRAPHFLOW_DEVICE", "cpu:0")
    compute_device.cache_clear()
    yield
    compute_device.cache_clear()  # (the variable is put back after this, before anything reads it)


@pytest.fixture(scope="module")
def module_manager():
    """fresh_manager, one for a test file's tests: its teardown (every module offloaded, a full
    garbage collection) costs about a second, more than some tests."""
    with pytest.MonkeyPatch.context() as patch:
        yield from _fresh_manager(patch)


def _freeze_live_objects():
    """Leave what lives for the whole run (imported modules, the node registry) out of every later
    garbage collection: the memory manager's teardown and free_memory() collect in full, and the
    hundreds of thousands of objects torch, the test modules and the registry bring took about a
    second a collection, more than many tests. What is alive at the freeze is freed by reference
    counting alone from then on (a cycle among it stays): the registry's first user's fixtures at
    most, small test models; objects made later are collected as before."""
    gc.collect()
    gc.freeze()


def pytest_collection_finish(session):
    _freeze_live_objects()


@pytest.fixture(scope="session")
def builtin_registry():
    from graphflow.registry import Registry

    registry = Registry().load_builtin()
    _freeze_live_objects()
    return registry


# A whole run writes some 18 GB of model files into pytest's temp folder; kept to the run's end (and
# pytest keeps the last runs), they filled the disk. A passing test's folder goes when it ends
# (pyproject: tmp_path_retention_policy = "failed"), and a test file's module-scoped folders when
# the file's tests have all passed (the suite runs a file's tests in one process, one after another);
# a failing file keeps them to look at.
_FAILED_MODULES: set[str] = set()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed:
        _FAILED_MODULES.add(item.module.__name__)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """Name a test after which this worker's main thread is on a real-time scheduling policy, and
    put it back on SCHED_OTHER. In this VM a worker was found under SCHED_FIFO priority 99 (SVT-AV1
    sets it when an AV1 video is encoded; graphflow.video now puts it back); Chromium started from it
    inherited the policy and livelocked the kernel. The warning reaches the run's warnings summary
    (xdist passes it on) and names the test."""
    result = yield
    if os.sched_getscheduler(0) != os.SCHED_OTHER:
        import warnings

        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        warnings.warn(f"{item.nodeid} left its process on a real-time scheduling policy (reset to SCHED_OTHER)")
    return result


@pytest.fixture(scope="module", autouse=True)
def _module_temp_folders(request, tmp_path_factory):
    import shutil

    base = tmp_path_factory.getbasetemp()
    before = set(base.iterdir())
    yield
    if request.module.__name__ not in _FAILED_MODULES:
        for path in set(base.iterdir()) - before:
            shutil.rmtree(path, ignore_errors=True)
