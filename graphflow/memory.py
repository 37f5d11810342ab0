"""The model memory manager: every model component (diffusion model, each text encoder, the
VAE, TAESD, ControlNets and T2I-Adapters, AnimateDiff motion models, upscale models) goes through it
before running on the compute device.

`use(module, kind)` is a context manager around a component's work. The manager makes room
for the component by offloading least-recently-used ones to CPU RAM (kept, not freed); when
the component alone does not fit, it is partially loaded: the blocks (modules that own
parameters) that fit stay on the device, each of the rest gets a forward pre-hook that moves
it in and a post-hook that moves it out again, so the result is the same as a full load.
Text encoders (and the other TRANSIENT kinds: CLIP vision, style models, annotators) leave the
device when their work is done; the VAE and the diffusion model stay
until something else needs the room. A component pinned to the CPU (`pin_to_cpu`: CLIPLoader's
device "cpu", for a T5-XXL that would crowd a small GPU) never goes to the device: it stays in
CPU RAM, computes there, and takes no device room.

Weight patches (LoRA): a MODEL or CLIP made from another shares its network and carries a tuple
of `WeightPatch`es; `use(module, kind, name, patches)` and `patch(module, patches)` make the shared
weights hold exactly that tuple's changes before the work, restoring whatever another patch set
changed. In place when the originals fit in RAM beside everything else (each original kept on the
offload device, so the device holds one copy of the network), else on the fly: a hook computes
each patched weight just before its layer runs and puts the original back after it (no backup,
one patched layer at a time). Both restore the original tensors themselves: bit-exact. A GGUF
layer's quantized blocks (uint8, graphflow.models.gguf_layers) are always patched on the fly, as
ComfyUI-GGUF patches them at each forward: in place, its compute-dtype values would replace blocks
a few times smaller, a growth nothing counts. Every patch of such a layer (a LoRA, an attention
multiplier, a hook's model-as-LoRA) changes its dequantized float32 values, never its bytes.

Cached patch sets (ComfyUI's cached hook patches): `patch(module, patches, cache=True)` (the hook
switch, graphflow.sampling.hooks, while one sampling run alternates hook sets) keeps what it
switches away from: the patched tensor of each weight under (that weight, its patches), and on a
GPU the weight's original on the device, so switching back is a tensor swap instead of a
recomputation. The records of weights back at their originals stay, so the RAM copies of the
originals are neither dropped nor copied again. A cached copy lives where its weight lives: on
the device for the blocks resident there, counted in the device's room (leaving `DEVICE_MARGIN`
to activations where CUDA is asked, none under `--vram none`, twice its size under `--vram low`),
in RAM for streamed blocks, counted against the RAM. A switch's copies for one place are kept
when they all fit (the room is asked once per switch); cached copies are the first thing let go
when memory is needed (least recently kept first), dropped with
their component's placement (offload, partial load, drop from RAM) and after an out-of-memory
error, and `drop_patch_cache` ends them all when the run ends, however it ends.

Shared weights: two components whose modules share parameters (a `_shallow` copy in
graphflow/models/lora.py: FreeU, AnimateDiff's UNet with a motion model, a `patched_copy`) form a
group. A group's shared tensors are counted once (`used`, `ram_used`, the peak) and move together:
a member loaded whole joins the members already loaded (only its own tensors move); a member loaded
in part, or streamed, is the group's only placed member (the others are offloaded first: their
blocks would otherwise hold the streamed weights), except while a member with placed weights runs:
nothing moves under a run, so the new member is loaded whole beside it, and a running member placed
in part is made whole too (over the budget, with an `over_budget` event); offloading one offloads the
group, so no member's record says "loaded" while its weights are on the CPU; eviction passes over a
group while any member is in use (ranked by its most recent use); its members share one run lock
(`RunLock`: their runs take turns, as they patch the same Parameters); a member is never dropped from
RAM. A group with a pinned member is pinned: every member runs on the CPU (a member running when
another is pinned keeps its weights until its run ends). Tensors are told apart by Parameter object
(and a buffer by its module and name), so the buffers of each shallow-copied module (the root, or one
on the way to a copied one) count twice.

RAM: when RAM itself runs short (`GRAPHFLOW_RAM_BUDGET_GB` simulates a RAM of that size, counting
the managed weights; else the system's available memory is asked), the least-recently-used idle
components that are off the device and have a source (`set_source`: the loaders register one)
are dropped from RAM and read from their file again when next needed. A model derived from one
(a merge, IC-Light's or FreeU's copy) is registered only when it first runs, so its base may be
dropped under it first: `register` and `present` read back any dropped component whose weights (or
the drop's meta stand-ins, copied while it was dropped) a module holds.

Capacity: `GRAPHFLOW_VRAM_BUDGET_GB` makes the manager treat the compute device as having
that much memory, whatever it is (the CPU included, where "device" and "offload" are both
RAM and only the manager's record tells them apart: every policy is testable without a GPU);
else CUDA's total memory; else unlimited. `--vram low` keeps at most half the free memory
for weights (the rest for activations), `--vram none` streams every block; `--reserve-vram GB`
keeps that much aside for other programs.
"""

import contextlib
import functools
import os
import threading
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from graphflow.device import compute_device, free_memory

VRAM_MODES = ("normal", "low", "none")
TRANSIENT = ("text_encoder", "clip_vision", "style_model", "model_patch", "annotator")  # kinds that leave the device as soon as their work is done
GiB = 1024 ** 3
RAM_MARGIN = GiB  # RAM left to everything else when the system's available memory is asked
DEVICE_MARGIN = GiB  # CUDA memory left to activations when a cached patched weight would take room


def module_bytes(module: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in (*module.parameters(), *module.buffers()))


def _tensor_bytes(module: nn.Module, factor: float) -> dict:
    """Counted bytes of each of the module's tensors, keyed as `Component.tensors` says. A buffer's
    key is its module's id and name: a `_shallow` copy of any module (the root, or one on the way to
    a copied one: `copied_modules`) has its own buffer dict, so its buffers, the same tensors as the
    original's, are counted twice in a group (conservative: more room asked, never less)."""
    keys = {}
    for m in module.modules():
        for p in m._parameters.values():
            if p is not None:
                keys[id(p)] = int(p.numel() * p.element_size() * factor)
        for name, b in m._buffers.items():
            if b is not None:
                keys[(id(m), name)] = int(b.numel() * b.element_size() * factor)
    return keys


def _own_bytes(module: nn.Module) -> int:
    return sum(t.numel() * t.element_size()
               for t in (*module.parameters(recurse=False), *module.buffers(recurse=False)))


class RunLock:
    """A group's run lock (components sharing weights: their runs take turns, as they patch the same
    Parameters), reached through a holder each member points to. Groups joining (a component sharing
    weights with two of them) join their holders: one is pointed at the other, whose locks become the
    union of both, so a lock a run holds is never replaced. A run (`with holder:`) takes every lock of
    its holder's union, in one order (by id); inside a run (this thread already holds one of them: the
    pipeline's gathered locks, then `use`) it takes again only those it holds, so two runs that were
    both going when their groups joined go on without waiting for each other, while a new run waits for
    both. Holders are never split (a bridge freed later leaves its groups taking turns)."""

    _links = threading.Lock()  # guards every holder's link and union
    _local = threading.local()  # per thread: times each lock is held, and what each `acquire` took

    def __init__(self):
        self._into: RunLock | None = None
        self._locks = [threading.RLock()]

    def _root(self) -> "RunLock":
        holder = self
        while holder._into is not None:
            holder = holder._into
        return holder

    def locks(self) -> list:
        with RunLock._links:
            return list(self._root()._locks)

    def join(self, other: "RunLock") -> None:
        """One lock for both holders' groups from now on (the union of their locks)."""
        with RunLock._links:
            mine, theirs = self._root(), other._root()
            if mine is not theirs:
                theirs._into = mine
                mine._locks = sorted({id(lk): lk for lk in (*mine._locks, *theirs._locks)}.values(), key=id)

    @staticmethod
    def acquire_all(holders) -> None:
        """The locks of every holder, in one order: each whole for a new run, only those this thread
        holds inside a run (see the class docstring)."""
        local = RunLock._local
        held = local.__dict__.setdefault("held", {})
        locks = sorted({id(lk): lk for h in holders for lk in h.locks()}.values(), key=id)
        if any(held.get(id(lk)) for lk in locks):
            locks = [lk for lk in locks if held.get(id(lk))]
        for lk in locks:
            lk.acquire()
            held[id(lk)] = held.get(id(lk), 0) + 1
        local.__dict__.setdefault("taken", []).append(locks)

    @staticmethod
    def release_last() -> None:
        local = RunLock._local
        for lk in reversed(local.taken.pop()):
            local.held[id(lk)] -= 1
            lk.release()

    def acquire(self) -> None:
        RunLock.acquire_all((self,))

    def release(self) -> None:
        RunLock.release_last()

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()
        return False


@contextlib.contextmanager
def run_locks(holders):
    """The run locks of several components (a sampling run's parts) taken together, in one order."""
    RunLock.acquire_all(list(holders))
    try:
        yield
    finally:
        RunLock.release_last()


@dataclass
class Component:
    name: str
    kind: str  # diffusion_model | text_encoder | vae | control | motion_model | upscale_model | annotator | other
    module: weakref.ref
    size: int
    state: str = "offloaded"  # offloaded | loaded | partial | dropped (from RAM, re-read when needed)
    resident_bytes: int = 0
    blocks: int = 0
    resident_blocks: int = 0
    last_used: float = 0.0
    factor: float = 1.0  # counted bytes per real byte (bench/memory.py: scaled-down models as full-size)
    hooks: list = field(default_factory=list)
    reload: Callable[[], nn.Module] | None = None  # a fresh module of the same layout, read from its file
    in_use: int = 0  # `use` blocks running it: never dropped then
    pinned: bool = False  # kept on the offload device (the CPU) and run there, never loaded
    dropped: list = field(default_factory=list)  # (module, name, Parameter) while dropped
    # Held while it runs or is patched: two runs sharing the weights with different patch sets
    # (server workers) take turns instead of patching under each other. Shared by its group (RunLock).
    run_lock: RunLock = field(default_factory=RunLock)
    # counted bytes of each tensor (id of a Parameter, (id of its module, name) for a buffer), taken at
    # registration: what groups components that share weights and counts the shared ones once. Ids, not
    # the tensors (no reference kept): safe because a record lives only while its module does (a dead
    # one is forgotten, groups and unions computed again, before an id could be reused by a new object),
    # and a Parameter keeps its id when its data moves between devices or is patched (`param.data = ...`);
    # _drop's meta stand-ins keep the real Parameters alive in `dropped`. A Parameter object replaced in
    # a registered module by other code would leave a stale key (its id free for reuse): none does.
    tensors: dict = field(default_factory=dict, repr=False)

    def to_json(self) -> dict:
        return {"name": self.name, "kind": self.kind, "size": self.size, "state": self.state,
                "resident_bytes": self.resident_bytes, "blocks": self.blocks,
                "resident_blocks": self.resident_blocks, "pinned": self.pinned}


@dataclass(frozen=True, eq=False)
class WeightPatch:
    """A change to one parameter of a component (its path under the module `use` gets):
    `change(weight) -> new weight` of the same shape and dtype, the input left untouched. Patch
    sets are tuples applied in order (stacked LoRAs); compared by identity, so the same tuple
    applied twice is applied once. `seed`: of the stochastic rounding of stacked patches' result
    into an fp8 weight (ComfyUI's: the CRC-32 of the weight's key)."""
    param: str
    change: Callable[[torch.Tensor], torch.Tensor]
    seed: int = 0


@dataclass(eq=False)
class _Patched:
    """A parameter holding a patch set: in place (`original` kept) or on the fly (`hooks`)."""
    param: weakref.ref
    patches: tuple
    original: torch.Tensor | None = None
    hooks: tuple = ()

    @property
    def nbytes(self) -> int:
        return 0 if self.original is None else self.original.numel() * self.original.element_size()


@dataclass(eq=False)
class _Cached:
    """A weight as one patch set makes it (the original for the empty set), kept for a switch back."""
    param: weakref.ref
    owner: int  # id of the component's module
    tensor: torch.Tensor
    nbytes: int  # counted bytes (the component's factor)
    on_device: bool  # where the weight's block is resident, else in RAM with its streamed block


class MemoryManager:
    def __init__(self, vram: str = "normal", reserve_gb: float = 0.0, virtual_sizes: dict[str, float] | None = None):
        self.configure(vram, reserve_gb)
        self.virtual_sizes = virtual_sizes or {}  # component name -> bytes to count it as (benchmarks)
        self.components: dict[int, Component] = {}
        self.events: list[dict] = []  # what the manager did: load, partial, offload (tests read it)
        self.streaming = 0  # bytes of streamed blocks on the device right now
        self.peak = 0  # most weight bytes on the device at once (bench/memory.py)
        self.patched: dict[int, _Patched] = {}  # id(parameter) -> its patch state
        # (id(parameter), its patches) -> the weight as they make it; least recently kept first
        self.patch_cache: OrderedDict[tuple, _Cached] = OrderedDict()
        self.cache_patches = True  # patch(..., cache=True) may keep patched weights (off: bench, tests)
        self._groups: dict[int, list[Component]] | None = None  # id(component) -> its group; None: to compute
        self._unions: dict[tuple, int] = {}  # ids of components -> bytes of their tensors (shared once)
        # id(meta stand-in) -> (weakref to it, its component, weakref to the module it stood in, name,
        # whether a Parameter): while a stand-in lives (a model derived from a dropped one may hold it in
        # a dict of its own), its holder can be given the real tensor back (`_read_back_shared`)
        self._standins: dict[int, tuple] = {}
        self._lock = threading.RLock()

    def configure(self, vram: str = "normal", reserve_gb: float = 0.0) -> None:
        if vram not in VRAM_MODES:
            raise ValueError(f"--vram must be one of {', '.join(VRAM_MODES)}, got {vram!r}")
        if reserve_gb < 0:
            raise ValueError(f"--reserve-vram must be >= 0 GB, got {reserve_gb}")
        self.vram, self.reserve = vram, int(reserve_gb * GiB)

    # -- capacity -------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return compute_device()

    @property
    def offload_device(self) -> torch.device:
        return torch.device("cpu")

    def capacity(self) -> int | None:
        """Bytes of device memory the manager may fill (None: unlimited)."""
        budget = os.environ.get("GRAPHFLOW_VRAM_BUDGET_GB")
        if budget:
            return max(0, int(float(budget) * GiB) - self.reserve)
        if self.device.type == "cuda":
            return max(0, torch.cuda.get_device_properties(self.device).total_memory - self.reserve)
        return None

    def used(self) -> int:
        """Bytes on the device: the managed weights (the simulated budget), else what CUDA reports."""
        if os.environ.get("GRAPHFLOW_VRAM_BUDGET_GB") or self.device.type != "cuda":
            return self._live_resident_bytes() + self.streaming + self.cache_bytes(True)
        free, total = torch.cuda.mem_get_info(self.device)
        return total - free

    def _live_resident_bytes(self) -> int:
        """Bytes of the live components on the device, shared weights once (a freed module's record is
        forgotten only at the next register or status: its weights went with it)."""
        return sum(self._union(m for m in group if m.resident_bytes) for group in self._all_groups())

    # -- groups of components sharing weights -------------------------------------------------
    def _group(self, comp: Component) -> list[Component]:
        """`comp` and the live components sharing weights with it, directly or through others."""
        by_component = self._groups  # (another thread may start it anew meanwhile)
        if by_component is None:
            live = [c for c in list(self.components.values()) if c.module() is not None]
            parent = {id(c): c for c in live}

            def root(c):
                while parent[id(c)] is not c:
                    c = parent[id(c)]
                return c

            owner = {}
            for c in live:
                for key in c.tensors:
                    first = owner.setdefault(key, c)
                    a, b = root(first), root(c)
                    if a is not b:
                        parent[id(b)] = a
            groups: dict[int, list] = {}
            for c in live:
                groups.setdefault(id(root(c)), []).append(c)
            by_component = self._groups = {id(c): group for group in groups.values() for c in group}
        return [c for c in by_component.get(id(comp), [comp]) if c.module() is not None]

    def _all_groups(self) -> list[list[Component]]:
        seen, groups = set(), []
        for c in list(self.components.values()):
            if c.module() is not None and id(c) not in seen:
                group = self._group(c)
                seen.update(id(m) for m in group)
                groups.append(group)
        return groups

    def _union(self, members) -> int:
        """Bytes the members hold on the device, shared tensors once. Several placed members of one
        group are all loaded whole (one placed in part is its group's only placed member)."""
        members = list(members)
        if len(members) <= 1:
            return sum(c.resident_bytes for c in members)
        return self._tensors_bytes(members)

    def _tensors_bytes(self, members: list[Component]) -> int:
        """Bytes of the members' tensors, shared ones once (kept per member set: `used` runs often)."""
        key = tuple(sorted(id(c) for c in members))
        nbytes = self._unions.get(key)
        if nbytes is None:
            nbytes = self._unions[key] = sum({k: n for c in members for k, n in c.tensors.items()}.values())
        return nbytes

    def _shared_on_device(self, comp: Component, members: list[Component]) -> int:
        """Bytes of `comp`'s tensors already on the device through other members loaded whole."""
        loaded: set = set()
        for m in members:
            if m is not comp and m.state == "loaded":
                loaded.update(m.tensors)
        return sum(n for key, n in comp.tensors.items() if key in loaded) if loaded else 0

    def _busy(self, group: list[Component]) -> bool:
        return any(m.in_use for m in group)

    def _offload_group(self, comp: Component) -> None:
        """`comp` and every member of its group offloaded: their shared weights move together."""
        for member in self._group(comp):
            if not member.pinned or member.state not in ("offloaded", "dropped"):
                self._offload(member)

    def free(self) -> int | None:
        cap = self.capacity()
        return None if cap is None else max(0, cap - self.used())

    # -- components -----------------------------------------------------------------------
    def register(self, module: nn.Module, kind: str, name: str | None = None) -> Component:
        with self._lock:
            self._forget_dead()
            comp = self.components.get(id(module))
            if comp is None or comp.module() is not module:
                self._read_back_shared(module)  # before its tensors are taken: the real ones, not stand-ins
                name = name or f"{kind}:{type(module).__name__}@{id(module):x}"
                size = module_bytes(module)
                factor = self.virtual_sizes.get(name, size) / max(size, 1)
                on_device = _device_of(module) == self.device
                comp = Component(name, kind, weakref.ref(module), int(size * factor),
                                 blocks=len(_blocks(module)), factor=factor, tensors=_tensor_bytes(module, factor))
                self.components[id(module)] = comp
                self._groups, self._unions = None, {}
                members = [m for m in self._group(comp) if m is not comp]
                # The offload device is the device on the CPU: there, only the record moves. A module
                # sharing weights with others is on the device through them, not loaded: `load` places it.
                if on_device and self.device != self.offload_device and not members:
                    comp.state, comp.resident_bytes, comp.resident_blocks = "loaded", size, comp.blocks
                for member in members:  # one run lock for the group: holders joined, no held lock replaced
                    member.run_lock.join(comp.run_lock)
            return comp

    def _forget_dead(self) -> None:
        for key in [k for k, c in self.components.items() if c.module() is None]:
            del self.components[key]
            self._groups, self._unions = None, {}

    def pin_to_cpu(self, module: nn.Module, kind: str, name: str | None = None) -> Component:
        """Keep a component on the offload device (the CPU) for its whole life: `use` runs it
        there (its inputs go where `device_for` says: the CPU), it is never loaded, partly
        loaded or streamed, and it counts only against the RAM (it may still be dropped from
        RAM and read back there). The module should already hold its weights on the CPU in
        the dtype it is to compute in there."""
        with self._lock:
            comp = self.register(module, kind, name)
            comp.pinned = True
            self._settle_pinned(comp)  # its weights, shared ones included, on the CPU (once none runs)
            return comp

    def _settle_pinned(self, comp: Component) -> None:
        """A group with a pinned member is pinned (runs on the CPU): its placed weights are offloaded,
        unless a member runs now (then when its run ends: its weights stay where its run has them)."""
        group = self._group(comp)
        if any(m.pinned for m in group) and not self._busy(group) \
                and any(m.resident_bytes or m.state not in ("offloaded", "dropped") for m in group):
            self._offload_group(comp)

    def is_pinned(self, module: nn.Module) -> bool:
        comp = self.components.get(id(module))
        return comp is not None and comp.module() is module and comp.pinned

    def device_for(self, module: nn.Module) -> torch.device | None:
        """Where a component's inputs go: the device while the manager has it there (even with
        its first blocks streamed), else where its first parameter is."""
        comp = self.components.get(id(module))
        if comp is not None and comp.module() is module and comp.state not in ("offloaded", "dropped"):
            return self.device
        return _device_of(module)

    def use(self, module: nn.Module, kind: str, name: str | None = None, patches: tuple = ()) -> "_Use":
        return _Use(self, module, kind, name, patches)

    def load(self, module: nn.Module, kind: str = "other", name: str | None = None) -> Component:
        """Put the component on the device, whole if it fits (after offloading others), else in part."""
        with self._lock:
            comp = self.register(module, kind, name)
            comp.last_used = time.monotonic()
            self._make_ram_room(comp.size if comp.state == "dropped" else 0, (comp,))
            self._read_back(comp, module)
            members = [m for m in self._group(comp) if m is not comp]
            if comp.pinned or any(m.pinned for m in members):  # pinned (its group): runs on the CPU
                self._settle_pinned(comp)
                return comp
            if comp.state == "loaded":
                return comp
            for other in members:  # a member placed in part streams shared blocks: it leaves first
                if other.state == "partial" and not other.in_use:
                    self._offload(other)
            cap = self.capacity()
            if self.vram == "none":
                target = 0
            elif cap is None:
                target = comp.size
            else:
                # Offload least-recently-used other groups (none with a member running now, none of this
                # one's) until this one fits beside its loaded members or nothing is left to move.
                shared = self._shared_on_device(comp, members)
                need = comp.size - comp.resident_bytes - shared
                self._evict(lambda: self.free() >= need * (2 if self.vram == "low" else 1), "device")
                groups = [g for g in self._all_groups() if all(m is not comp for m in g)]
                for group in sorted(groups, key=lambda g: max(m.last_used for m in g)):
                    if self.free() >= need * (2 if self.vram == "low" else 1):
                        break
                    if any(m.resident_bytes for m in group) and not self._busy(group):
                        self._offload_group(group[0])
                room = comp.resident_bytes + shared + self.free()
                target = room // 2 if self.vram == "low" else room
            running = [m for m in members if m.in_use and m.resident_bytes]
            if target < comp.size and running:
                # A member runs with weights placed: nothing moves under its run, so this one is loaded
                # whole beside it, and a running member placed in part is made whole too (its streaming
                # hooks, on the blocks both share, would move the shared weights out under this one):
                # over the budget, said by an `over_budget` event, rather than records that lie.
                self._place(comp, module, comp.size)
                for other in running:
                    if other.state == "partial" and other.module() is not None:
                        self._place(other, other.module(), other.size)
                self.events.append({"action": "over_budget", "component": comp.name, "kind": comp.kind,
                                    "bytes": self.used(), "capacity": cap})
                return comp
            if target < comp.size and any(m.state in ("loaded", "partial") for m in members):
                # In part: the group's only placed member (their blocks would hold its streamed weights)
                for other in members:
                    if not other.in_use:
                        self._offload(other)
                if cap is not None and self.vram != "none":
                    room = comp.resident_bytes + self.free()
                    target = room // 2 if self.vram == "low" else room
            self._place(comp, module, target)
            return comp

    def _place(self, comp: Component, module: nn.Module, target: int) -> None:
        self._remove_hooks(comp)
        self._drop_cached(id(module))  # kept where the weights were
        if target >= comp.size:
            module.to(self.device)
            comp.state, comp.resident_bytes, comp.resident_blocks = "loaded", comp.size, comp.blocks
            self._note_peak()
            self.events.append({"action": "load", "component": comp.name, "kind": comp.kind, "bytes": comp.size})
            return
        blocks = _blocks(module)
        sizes = [int(_own_bytes(b) * comp.factor) for b in blocks]
        target -= max(sizes, default=0)  # room for the largest block streamed in beside the resident ones
        resident = streamed = 0
        count = 0
        for block, size in zip(blocks, sizes):
            if resident + size <= target and streamed == 0:  # keep a prefix: blocks run in order
                _move_own(block, self.device)
                resident += size
                count += 1
            else:
                _move_own(block, self.offload_device)
                streamed += 1
                comp.hooks.append(block.register_forward_pre_hook(functools.partial(self._stream_in, size)))
                comp.hooks.append(block.register_forward_hook(functools.partial(self._stream_out, size)))
        comp.state, comp.resident_bytes, comp.resident_blocks = "partial", resident, count
        self._note_peak()
        self.events.append({"action": "partial", "component": comp.name, "kind": comp.kind, "bytes": resident,
                            "blocks": comp.blocks, "resident_blocks": count})

    def _stream_in(self, size, block, args):
        _move_own(block, self.device)
        self.streaming += size
        self._note_peak()

    def _stream_out(self, size, block, args, output):
        _move_own(block, self.offload_device)
        self.streaming = max(0, self.streaming - size)

    def _note_peak(self) -> None:
        self.peak = max(self.peak, self._live_resident_bytes() + self.streaming)

    def _remove_hooks(self, comp: Component) -> None:
        for hook in comp.hooks:
            hook.remove()
        comp.hooks.clear()

    def _offload(self, comp: Component) -> None:
        if comp.state == "dropped":
            return
        module = comp.module()
        self._remove_hooks(comp)
        if module is not None:
            self._drop_cached(id(module))
            module.to(self.offload_device)
        if comp.resident_bytes or comp.state != "offloaded":
            self.events.append({"action": "offload", "component": comp.name, "kind": comp.kind})
        comp.state, comp.resident_bytes, comp.resident_blocks = "offloaded", 0, 0

    def offload(self, module: nn.Module) -> None:
        """The component to CPU RAM with every component sharing weights with it; nothing moves while
        another of them runs (its weights stay where its run has them)."""
        with self._lock:
            comp = self.components.get(id(module))
            if comp is not None and comp.module() is module:
                if any(m.in_use for m in self._group(comp) if m is not comp):
                    return
                self._offload_group(comp)

    def offload_idle(self) -> list[str]:
        """Every component to CPU RAM whose weight-sharing group has no member in use (a running
        model and what shares weights with it stay where they are), under the manager's lock; the
        names of those moved."""
        moved = []
        with self._lock:
            for group in self._all_groups():
                if self._busy(group):
                    continue
                for member in group:
                    if member.state not in ("offloaded", "dropped"):
                        self._offload(member)
                        moved.append(member.name)
        return moved

    def offload_all(self) -> list[str]:
        """Everything to CPU RAM, the cached patched weights dropped and the GPU's cache emptied
        (after an out-of-memory error, or when asked to free memory); the names of those moved.
        A model another worker is running, and what shares weights with it, stays where it is, with
        its cached weights: moving them would pull its weights from under that run."""
        with self._lock:
            moved = self.offload_idle()
            running = {id(m.module()) for group in self._all_groups() if self._busy(group) for m in group}
            for key in [k for k, e in self.patch_cache.items() if e.owner not in running]:
                del self.patch_cache[key]
        free_memory()
        return moved

    # -- RAM pressure ---------------------------------------------------------------------
    def set_source(self, module: nn.Module, kind: str, name: str | None, reload: Callable[[], nn.Module]) -> None:
        """Register a component that can be dropped from RAM when RAM runs short: `reload()` reads
        a fresh module of the same layout from its file when it is needed again."""
        with self._lock:
            self.register(module, kind, name).reload = reload
            self._make_ram_room(0)

    def _make_ram_room(self, need: int, keep: tuple = ()) -> None:
        """Drop least-recently-used components that are off the device and idle from RAM until
        `need` more bytes fit in it (cached patched weights in RAM go first), none of `keep`."""
        self._evict(lambda: not self._ram_short(need), "ram")
        for other in sorted(self.components.values(), key=lambda c: c.last_used):
            if not self._ram_short(need):
                return
            if all(other is not k for k in keep) and other.reload is not None and other.in_use == 0 \
                    and other.state != "dropped" and (other.state == "offloaded" or self.device == self.offload_device):
                self._drop(other)

    def _ram_short(self, need: int) -> bool:
        cap = self.ram_capacity()
        if cap is not None:
            return self.ram_used() + need > cap
        import psutil

        return need > psutil.virtual_memory().available - RAM_MARGIN

    def _drop(self, comp: Component) -> None:
        module = comp.module()
        if module is None or self._shares_weights(comp, module):
            return
        self._offload(comp)
        self._drop_cached(id(module))
        for param in module.parameters():  # its patches go with it (their originals are what is dropped)
            record = self.patched.pop(id(param), None)
            for hook in record.hooks if record is not None else ():
                hook.remove()
        # Meta stand-ins in the module (a stray forward fails loudly); the Parameter objects
        # themselves, emptied, come back with the weights read again.
        comp.dropped = []
        for m in module.modules():
            for key, p in list(m._parameters.items()):
                if p is not None:
                    m._parameters[key] = self._standin(nn.Parameter(torch.empty_like(p, device="meta"),
                                                                    requires_grad=False), comp, m, key, True)
                    comp.dropped.append((m, key, p))
                    p.data = torch.empty(0, dtype=p.dtype)
            for key, b in m._buffers.items():
                if b is not None:
                    m._buffers[key] = self._standin(torch.empty_like(b, device="meta"), comp, m, key, False)
        comp.state, comp.resident_bytes, comp.resident_blocks = "dropped", 0, 0
        self.events.append({"action": "drop", "component": comp.name, "kind": comp.kind, "bytes": comp.size})

    def _shares_weights(self, comp: Component, module: nn.Module) -> bool:
        """Whether another live component (a merge, a FreeU clone) holds some of these Parameters."""
        mine = {id(p) for p in module.parameters()}
        return any(other is not comp and other.module() is not None
                   and any(id(p) in mine for p in other.module().parameters())
                   for other in self.components.values())

    def _read_back(self, comp: Component, module: nn.Module) -> None:
        """A dropped component's weights read from its file again, into the same Parameters."""
        if comp.state != "dropped":
            return
        fresh = comp.reload()
        for m, key, p in comp.dropped:
            m._parameters[key] = p
        comp.dropped = []
        for name, p in module.named_parameters():
            p.data = fresh.get_parameter(name).data.to(self.offload_device)
        for name, b in list(module.named_buffers()):
            owner, _, key = name.rpartition(".")
            module.get_submodule(owner)._buffers[key] = fresh.get_buffer(name).to(self.offload_device)
        comp.state = "offloaded"
        self.events.append({"action": "reload", "component": comp.name, "kind": comp.kind, "bytes": comp.size})

    def _standin(self, tensor: torch.Tensor, comp: Component, owner: nn.Module, key: str, param: bool):
        entry = id(tensor)
        self._standins[entry] = (weakref.ref(tensor, lambda _: self._standins.pop(entry, None)), comp,
                                 weakref.ref(owner), key, param)
        return tensor

    def _read_back_shared(self, module: nn.Module) -> None:
        """The dropped components whose weights `module` holds read back, and any meta stand-in in its
        own dicts replaced by the real tensor. A model derived from another (a `patched_copy`: IC-Light,
        a merge; a `_shallow` copy: FreeU) shares the other's modules and Parameters, yet is registered
        only when it first runs: until then the other may be dropped under it, and a copy made while
        the other was dropped holds its stand-ins."""
        if not self._standins:
            return
        entries = []  # (the dict holding a stand-in, its key, the stand-in's record)
        for m in module.modules():
            for tensors in (m._parameters, m._buffers):
                for key, t in tensors.items():
                    entry = self._standins.get(id(t))
                    if entry is not None and entry[0]() is t:
                        entries.append((tensors, key, entry))
        sources = list({id(e[1]): e[1] for _, _, e in entries if e[1].state == "dropped"}.values())
        for comp in sources:
            if comp.module() is not None:
                self._make_ram_room(comp.size, tuple(sources))
                self._read_back(comp, comp.module())
        for tensors, key, (_, comp, owner, name, param) in entries:
            owner = owner()
            if owner is not None and comp.state != "dropped":
                tensors[key] = (owner._parameters if param else owner._buffers)[name]

    def present(self, module: nn.Module) -> None:
        """The module's weights in RAM (read back if they were dropped), wherever they are: a
        component's, or any module holding a dropped one's (a part of it, a model derived from it)."""
        with self._lock:
            comp = self.components.get(id(module))
            if comp is not None and comp.module() is module and comp.state == "dropped":
                self._make_ram_room(comp.size, (comp,))
                self._read_back(comp, module)
            self._read_back_shared(module)

    # -- weight patches ---------------------------------------------------------------------
    def patch(self, module: nn.Module, patches: tuple = (), cache: bool = False) -> None:
        """Make `module`'s weights hold exactly `patches`: parameters another patch set changed
        get their originals back, the rest are patched (see the module docstring). `cache`: keep
        the weights switched away from for a switch back (one sampling run's hook sets)."""
        with self.run_lock(module), self._lock, torch.no_grad():
            self.present(module)
            self._forget_dead_patches()
            cache = cache and self.cache_patches
            want = _by_param(module, patches)
            resident = self._resident(module) if cache else None
            switched = computed = 0
            keep = []  # (param, patches, tensor, resident) to cache
            for param in module.parameters():
                record = self.patched.get(id(param))
                if record is None:
                    continue
                ps = want[id(param)][2] if id(param) in want else ()
                if record.patches == ps and (ps or cache):  # (a record at the originals is kept while caching)
                    continue
                if cache and record.original is not None:
                    computed += self._switch(param, record, ps, id(param) in resident, keep)
                    switched += 1
                else:
                    self._restore(id(param), record)
            if switched:
                self.events.append({"action": "switch", "params": switched, "computed": computed})
            todo = [(path, param, ps) for key, (path, param, ps) in want.items() if key not in self.patched]
            if todo:
                self._apply(module, todo, keep if cache else None, resident)
            self._keep_all(module, keep)

    def _apply(self, module: nn.Module, todo: list, keep: list | None, resident: set | None) -> None:
        """Patch parameters that hold no patches yet, in place or on the fly (a GGUF layer's blocks
        always on the fly: see the module docstring)."""
        blocks = [item for item in todo if item[1].dtype == torch.uint8]
        if blocks:
            for path, param, ps in blocks:
                owner = module.get_submodule(path.rpartition(".")[0])
                self.patched[id(param)] = _Patched(weakref.ref(param), ps, hooks=_fly(owner, param, ps))
            self.events.append({"action": "patch", "mode": "on_the_fly", "params": len(blocks), "bytes": 0})
            todo = [item for item in todo if item[1].dtype != torch.uint8]
            if not todo:
                return
        nbytes = sum(param.numel() * param.element_size() for _, param, _ in todo)
        if not self.ram_fits(nbytes):
            self._evict(lambda: self.ram_fits(nbytes), "ram")
        in_place = self.ram_fits(nbytes)
        for path, param, ps in todo:
            if in_place:
                original = param.data
                param.data = _changed(original, ps)
                backup = original.to(self.offload_device)
                self.patched[id(param)] = _Patched(weakref.ref(param), ps, backup)
                if keep is not None and not _same(backup, original):  # the device's original, for switches back
                    keep.append((param, (), original, id(param) in resident))
            else:
                owner = module.get_submodule(path.rpartition(".")[0])
                self.patched[id(param)] = _Patched(weakref.ref(param), ps, hooks=_fly(owner, param, ps))
        self.events.append({"action": "patch", "mode": "in_place" if in_place else "on_the_fly",
                            "params": len(todo), "bytes": nbytes if in_place else 0})

    def _switch(self, param: nn.Parameter, record: _Patched, ps: tuple, resident: bool, keep: list) -> int:
        """An in-place patched weight from its patch set to `ps`, what it held added to `keep`; 1
        when the new weight had to be computed."""
        key, current = id(param), param.data
        new = self._take(key, ps, current.device)
        computed = new is None and bool(ps)
        if new is None:
            base = current if not record.patches else self._take(key, (), current.device)
            if base is None:
                base = record.original.to(current.device)
            new = _changed(base, ps) if ps else base
            if record.patches and ps and not _same(base, record.original):
                keep.append((param, (), base, resident))  # the device's original, for the next switch
        if record.patches or not _same(current, record.original):  # the RAM original is kept anyway
            keep.append((param, record.patches, current, resident))
        param.data = new
        record.patches = ps
        return int(computed)

    def _resident(self, module: nn.Module) -> set:
        """ids of the module's parameters whose blocks stay on the device (the others are streamed)."""
        comp = self.components.get(id(module))
        if comp is None or comp.module() is not module or comp.state in ("offloaded", "dropped"):
            return set()
        blocks = _blocks(module) if comp.state == "loaded" else _blocks(module)[:comp.resident_blocks]
        return {id(p) for b in blocks for p in b._parameters.values() if p is not None}

    def _keep_all(self, module: nn.Module, items: list) -> None:
        """Cache each (param, patches, tensor, resident) of one switch, those of each place (device,
        RAM) all when they all fit, after letting go of least recently kept ones, else none."""
        comp = self.components.get(id(module))
        factor = comp.factor if comp is not None and comp.module() is module else 1.0
        for on_device in (True, False):
            group = [(param, ps, tensor, int(tensor.numel() * tensor.element_size() * factor))
                     for param, ps, tensor, resident in items if resident == on_device]
            if not group:
                continue
            for param, ps, _, _ in group:
                self.patch_cache.pop((id(param), ps), None)
            need = sum(n for *_, n in group)
            if not self._cache_room(need, on_device):
                self._evict(lambda: self._cache_room(need, on_device), "device" if on_device else "ram")
                if not self._cache_room(need, on_device):
                    continue
            for param, ps, tensor, n in group:
                self.patch_cache[(id(param), ps)] = _Cached(weakref.ref(param), id(module), tensor, n, on_device)

    def _take(self, key: int, ps: tuple, device: torch.device) -> torch.Tensor | None:
        entry = self.patch_cache.pop((key, ps), None)
        if entry is None or entry.param() is None or entry.tensor.device != device:
            return None
        return entry.tensor

    def _cache_room(self, nbytes: int, on_device: bool) -> bool:
        if on_device:
            if self.vram == "none":
                return False
            free = self.free()
            if free is not None:
                simulated = os.environ.get("GRAPHFLOW_VRAM_BUDGET_GB") or self.device.type != "cuda"
                if free - (0 if simulated else DEVICE_MARGIN) < nbytes * (2 if self.vram == "low" else 1):
                    return False
            if self.device != self.offload_device:
                return True
        return self.ram_fits(nbytes)

    def _counts_in(self, entry: _Cached, where: str) -> bool:
        if where == "device":
            return entry.on_device
        return not entry.on_device or self.device == self.offload_device

    def _evict(self, enough: Callable[[], bool], where: str) -> None:
        """Let go of cached patched weights counted in `where` ("device" or "ram"), least recently
        kept first, until `enough()`."""
        for key in [k for k, e in self.patch_cache.items() if self._counts_in(e, where)]:
            if enough():
                return
            del self.patch_cache[key]
            self.events.append({"action": "evict_patch_cache", "where": where})

    def _drop_cached(self, owner: int) -> None:
        for key in [k for k, e in self.patch_cache.items() if e.owner == owner]:
            del self.patch_cache[key]

    def drop_patch_cache(self, module: nn.Module) -> None:
        """Let go of every cached patched weight of `module` (a sampling run's hook sets, at its end)."""
        with self._lock:
            self._drop_cached(id(module))

    def keep_patch_cache(self, module: nn.Module, patch_sets) -> None:
        """Let go of `module`'s cached weights that none of `patch_sets` makes (the originals stay)."""
        with self._lock:
            live = {(key, ps) for patches in patch_sets for key, (_, _, ps) in _by_param(module, patches).items()}
            for key in [k for k, e in self.patch_cache.items() if e.owner == id(module) and k[1] and k not in live]:
                del self.patch_cache[key]

    def cache_bytes(self, on_device: bool | None = None) -> int:
        """Counted bytes of cached patched weights (on the device, in RAM, or all)."""
        return sum(e.nbytes for e in self.patch_cache.values() if on_device is None or e.on_device == on_device)

    def weights(self, module: nn.Module, patches: tuple = ()) -> dict[str, torch.Tensor]:
        """`module.state_dict()` as `patches` make it (for readers: saving, merging), computed from
        the originals; the module and what it holds now are left as they are. A GGUF layer's
        quantized weight comes dequantized, in its compute dtype."""
        with self._lock, torch.no_grad():
            self.present(module)
            by_param: dict[str, list] = {}
            for p in patches:
                by_param.setdefault(p.param, []).append(p)
            state = module.state_dict()
            for name, param in module.named_parameters():
                record = self.patched.get(id(param))
                original = param.data
                if record is not None and record.param() is param and record.original is not None:
                    original = record.original.to(param.device)
                owner = module.get_submodule(name.rpartition(".")[0]) if original.dtype == torch.uint8 else None
                if hasattr(owner, "values_of"):  # a GGUF layer's blocks (graphflow.models.gguf): readers get values
                    state[name] = _gguf_changed(owner, original, tuple(by_param.get(name, ())))
                else:
                    state[name] = _changed(original, tuple(by_param.get(name, ())))
            return state

    def run_lock(self, module: nn.Module):
        """The component's run lock (taken before the manager's own lock, never after it)."""
        with self._lock:
            comp = self.components.get(id(module))
            return comp.run_lock if comp is not None and comp.module() is module else contextlib.nullcontext()

    def unpatch(self, module: nn.Module) -> None:
        """Every patched weight of `module` back to its original."""
        self.patch(module, ())

    def backup_bytes(self) -> int:
        """RAM the originals of weights patched in place take."""
        return sum(r.nbytes for r in self.patched.values())

    def _restore(self, key: int, record: _Patched) -> None:
        for hook in record.hooks:
            hook.remove()
        param = record.param()
        if param is not None and record.original is not None:
            param.data = record.original.to(param.device)
        del self.patched[key]

    def _forget_dead_patches(self) -> None:
        for key in [k for k, r in self.patched.items() if r.param() is None]:
            del self.patched[key]
        for key in [k for k, e in self.patch_cache.items() if e.param() is None]:
            del self.patch_cache[key]

    # -- RAM --------------------------------------------------------------------------------
    def ram_capacity(self) -> int | None:
        """Bytes of RAM the manager may fill with weights: `GRAPHFLOW_RAM_BUDGET_GB` (simulated,
        counting the managed weights only), else None (the system's available memory is asked)."""
        budget = os.environ.get("GRAPHFLOW_RAM_BUDGET_GB")
        return max(0, int(float(budget) * GiB)) if budget else None

    def ram_used(self) -> int:
        """Bytes of managed weights in RAM: every component's part that is not on the device
        (all of it when the device is the CPU; weights shared by components once) plus the originals
        of patched weights."""
        on_cpu = self.device == self.offload_device
        weights = 0
        for group in self._all_groups():
            held = [c for c in group if c.state != "dropped"]
            if len(held) == 1:
                weights += held[0].size
            elif held:
                weights += self._tensors_bytes(held)
            if not on_cpu:
                weights -= self._union(c for c in held if c.resident_bytes)
        return weights + self.backup_bytes() + self.cache_bytes(None if on_cpu else False)

    def ram_fits(self, nbytes: int) -> bool:
        return not self._ram_short(nbytes)

    def status(self) -> dict:
        with self._lock:
            self._forget_dead()
            cap = self.capacity()
            return {"device": str(self.device), "vram": self.vram, "reserve": self.reserve,
                    "simulated_budget": bool(os.environ.get("GRAPHFLOW_VRAM_BUDGET_GB")),
                    "capacity": cap, "used": self.used(), "free": self.free(),
                    "ram_capacity": self.ram_capacity(), "ram_used": self.ram_used(),
                    "patch_backup_bytes": self.backup_bytes(), "patch_cache_bytes": self.cache_bytes(),
                    "components": [c.to_json() for c in self.components.values()]}


class _Use:
    def __init__(self, manager, module, kind, name, patches):
        self.manager, self.module, self.kind, self.name, self.patches = manager, module, kind, name, patches

    def __enter__(self):
        with self.manager._lock:
            self.lock = self.manager.register(self.module, self.kind, self.name).run_lock
        self.lock.acquire()
        try:
            # Loaded and counted in use under the manager's lock (taken after the run lock, as everywhere):
            # another worker's offload_idle (PurgeVRAM) in between would move the weights this run is
            # about to use.
            with self.manager._lock:
                comp = self.comp = self.manager.load(self.module, self.kind, self.name)
                comp.in_use += 1
            try:
                self.manager.patch(self.module, self.patches)  # after the load: patched where the weights run
            except BaseException:
                comp.in_use -= 1
                raise
        except BaseException:
            self.lock.release()
            raise
        return comp

    def __exit__(self, *exc):
        try:
            self.comp.in_use -= 1
            if self.kind in TRANSIENT:
                self.manager.offload(self.module)
            with self.manager._lock:  # a member pinned while this one ran: the group's weights go now
                self.manager._settle_pinned(self.comp)
        finally:
            self.lock.release()
        return False


def _by_param(module: nn.Module, patches: tuple) -> dict[int, tuple]:
    """id(parameter) -> (its path, the Parameter, its patches in order)."""
    want: dict[int, tuple] = {}
    for p in patches:
        param = module.get_parameter(p.param)
        want.setdefault(id(param), (p.param, param, []))[2].append(p)
    return {key: (path, param, tuple(ps)) for key, (path, param, ps) in want.items()}


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two tensors are views of the same memory (the original itself, not a copy of it)."""
    return a.device == b.device and a.data_ptr() == b.data_ptr()


def _changed(weight: torch.Tensor, patches: tuple) -> torch.Tensor:
    from graphflow.models.cast_layers import FP8_DTYPES, stochastic_round

    dtype = weight.dtype
    if patches and dtype in FP8_DTYPES or len(patches) > 1 and dtype in (torch.float16, torch.bfloat16):
        # stacked patches (LoRAs) change one float32 copy and round once, as ComfyUI's patcher
        # does (into fp8 stochastically): rounding after each would add their rounding errors;
        # an fp8 weight is changed in float32 even by one patch (torch has no fp8 arithmetic)
        weight = weight.float()
    for p in patches:
        weight = p.change(weight)
    # the weight key's seed (ComfyUI's: the CRC-32 of its key), from any patch that carries it, so the
    # rounding doesn't depend on the patches' order
    seed = next((p.seed for p in patches if p.seed), 0)
    return stochastic_round(weight, dtype, seed) if weight.dtype != dtype else weight


def _gguf_changed(owner: nn.Module, blocks: torch.Tensor, patches: tuple) -> torch.Tensor:
    """A GGUF layer's weight as `patches` make it, as ComfyUI-GGUF patches one: its blocks' values in
    float32, every patch (a LoRA, an attention multiplier, a hook's model-as-LoRA) applied to the
    values, rounded once into the layer's compute dtype. Never applied to the blocks themselves."""
    values = owner.values_of(blocks, torch.float32)
    for p in patches:
        values = p.change(values)
    return values.to(owner.compute_dtype)


def _fly(owner: nn.Module, param: nn.Parameter, patches: tuple) -> tuple:
    """Hooks that patch `param` for each forward of `owner` and put the original back after it.
    The restoring hook runs first after the forward (before a streamed block moves out) and even
    when the forward raises."""
    stash = []

    quantized = param.dtype == torch.uint8 and hasattr(owner, "values_of")

    def patch_in(module, args):
        stash.append(param.data)
        with torch.no_grad():
            param.data = _gguf_changed(owner, param.data, patches) if quantized else _changed(param.data, patches)

    def patch_out(module, args, output):
        if stash:
            param.data = stash.pop()

    return (owner.register_forward_pre_hook(patch_in),
            owner.register_forward_hook(patch_out, prepend=True, always_call=True))


def _blocks(module: nn.Module) -> list[nn.Module]:
    """The modules that own parameters or buffers directly, in registration order (≈ run order)."""
    return [m for m in module.modules() if _own_bytes(m)]


def _move_own(block: nn.Module, device: torch.device) -> None:
    # Only the block's own tensors; its children are blocks of their own.
    for p in block._parameters.values():
        if p is not None and p.device != device:
            p.data = p.data.to(device)  # the same Parameter object: references to it stay valid
    for name, b in block._buffers.items():
        if b is not None and b.device != device:
            block._buffers[name] = b.to(device)


def _device_of(module: nn.Module) -> torch.device | None:
    for t in module.parameters():
        return t.device
    return None


_manager = MemoryManager(os.environ.get("GRAPHFLOW_VRAM", "normal"),
                         float(os.environ.get("GRAPHFLOW_RESERVE_VRAM_GB", "0") or 0))


def manager() -> MemoryManager:
    return _manager


def use(module: nn.Module, kind: str, name: str | None = None, patches: tuple = ()):
    """`with memory.use(model.unet, "diffusion_model", patches=model.patches):` around a component's work."""
    return _manager.use(module, kind, name, patches)


def is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, (torch.OutOfMemoryError, MemoryError))
