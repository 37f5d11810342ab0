"""graphflow's command line: run, validate, convert, nodes, inspect, serve.

Exit codes: 0 success, 1 unreadable file, 2 bad command line, 3 invalid workflow,
4 a node failed, 130 interrupted, 141 the output pipe closed (`| head`).
"""

import argparse
import json
import os
import signal
import sys
import threading
import time

from graphflow.choices import COMPILE_MODES, PREVIEW_METHODS

EXIT_OK, EXIT_FILE, EXIT_USAGE, EXIT_INVALID, EXIT_NODE_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
EXIT_BROKEN_PIPE = 128 + 13  # the status of a process SIGPIPE ended, as `cat` shows under `| head`


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="graphflow", description="Run latent-diffusion node graphs.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a workflow: JSON (ours, ComfyUI API or UI format) or a PNG/WebP carrying one")
    run.add_argument("workflow")
    run.add_argument("--set", action="append", default=[], metavar="NODE_ID.INPUT=VALUE",
                     help="override an input; VALUE is JSON (numbers, true, \"text\") or plain text")
    _add_folder_flags(run)
    _add_limit_flags(run)
    _add_memory_flags(run)
    _add_speed_flags(run)
    run.add_argument("--quiet", action="store_true", help="no progress output")
    run.add_argument("--sweep", metavar="FILE.jsonl",
                     help='run once per line of overrides ({"NODE_ID.INPUT": value} or ["NODE_ID.INPUT=VALUE"]); '
                          "resumes where an earlier, interrupted sweep stopped")
    run.add_argument("--results", metavar="FILE.jsonl",
                     help="where a sweep records each line's status and files (default FILE.results.jsonl)")
    _add_ray_flags(run)
    _add_preview_flag(run)

    validate = sub.add_parser("validate", help="check a workflow without running it")
    validate.add_argument("workflow")
    validate.add_argument("--set", action="append", default=[], metavar="NODE_ID.INPUT=VALUE")
    _add_folder_flags(validate)
    _add_limit_flags(validate)

    convert = sub.add_parser("convert", help="write a workflow in another format (ours, ComfyUI API or UI)")
    convert.add_argument("workflow")
    convert.add_argument("--to", required=True, choices=("graphflow", "comfy-api", "comfy-ui"))
    convert.add_argument("-o", "--output", help="file to write (default: standard output)")
    _add_folder_flags(convert)

    nodes = sub.add_parser("nodes", help="list the available nodes")
    nodes.add_argument("--json", action="store_true", help="print the full catalogue as JSON")
    _add_folder_flags(nodes)

    inspect = sub.add_parser("inspect", help="describe a model file (checkpoint, LoRA, ControlNet, VAE, ...) "
                                             "or a diffusers folder")
    inspect.add_argument("checkpoint", metavar="FILE",
                         help="a file or diffusers folder path, or a name in the models folders (checkpoints, "
                              "loras, controlnet, diffusers, ...)")
    _add_model_folder_flags(inspect)

    serve = sub.add_parser("serve", help="start the server and browser editor")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8188, help="port (default 8188; 0 picks a free one)")
    serve.add_argument("--db", help="SQLite file for the queue and history (default <output dir>/history.db)")
    serve.add_argument("--max-upload-mb", type=float, default=50, help="largest accepted upload (default 50)")
    serve.add_argument("--max-model-upload-mb", type=float, default=4096,
                       help="largest model file a client may store (PUT /api/etn/upload; default 4096)")
    serve.add_argument("--cache-max-gb", type=float, help="bound on cached outputs and loaded models (default 16)")
    serve.add_argument("--workers", type=int, default=1, help="graphs run at once on the device (default 1)")
    serve.add_argument("--enable-cors-header", nargs="?", const="*", metavar="ORIGIN",
                       help="let web pages of ORIGIN (e.g. https://app.example:3000; without a value: any origin) "
                            "call the server from a browser, as ComfyUI's flag (default: same-origin pages only)")
    _add_ray_flags(serve)
    _add_folder_flags(serve)
    _add_preview_flag(serve)
    _add_limit_flags(serve, server=True)
    _add_memory_flags(serve)
    _add_speed_flags(serve)

    args = parser.parse_args(argv)
    if getattr(args, "device", None):
        os.environ["GRAPHFLOW_DEVICE"] = args.device
    if getattr(args, "vram", None) is not None or getattr(args, "reserve_vram", None) is not None:
        # Read by graphflow.memory when it is first imported (light commands never import it).
        if args.reserve_vram is not None and args.reserve_vram < 0:
            _error(f"--reserve-vram must be >= 0 GB, got {args.reserve_vram:g}")
            return EXIT_USAGE
        os.environ["GRAPHFLOW_VRAM"] = args.vram or "normal"
        os.environ["GRAPHFLOW_RESERVE_VRAM_GB"] = str(args.reserve_vram or 0)
        if "graphflow.memory" in sys.modules:
            sys.modules["graphflow.memory"].manager().configure(args.vram or "normal", args.reserve_vram or 0)
    if hasattr(args, "compile") and _set_speed_options(args) is not None:
        return EXIT_USAGE
    if hasattr(args, "models_dir"):
        from graphflow.folders import configure

        try:
            configure(models=args.models_dir, inputs=getattr(args, "input_dir", None),
                      outputs=getattr(args, "output_dir", None), plugins=getattr(args, "plugins_dir", None) or [],
                      extra_model_paths=args.extra_model_paths)
        except ValueError as e:  # an unreadable extra model paths file
            _error(str(e))
            return EXIT_USAGE
    command = {"run": cmd_run, "validate": cmd_validate, "convert": cmd_convert, "nodes": cmd_nodes,
               "inspect": cmd_inspect, "serve": cmd_serve}[args.command]
    try:
        code = command(args)
        sys.stdout.flush()  # here, where a closed pipe is handled, not at interpreter exit
        return code
    except KeyboardInterrupt:  # a second Ctrl-C during a run, or one outside it
        _error("aborted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`graphflow inspect X | head`): stop quietly, as `cat` does, and
        # point stdout at /dev/null so the interpreter's final flush cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _add_preview_flag(parser) -> None:
    parser.add_argument("--previews", choices=PREVIEW_METHODS, default="latent2rgb",
                        help="sampler previews: none, latent2rgb (a cheap linear map, the default) or taesd "
                             "(the tiny autoencoder when its decoder is in models/vae_approx/, else latent2rgb)")


def _set_previews(args) -> None:
    from graphflow.sampling.preview import set_preview_method

    set_preview_method(args.previews)


def _add_model_folder_flags(parser) -> None:
    parser.add_argument("--models-dir", help="folder with checkpoints/, vae/, loras/ (default ./models)")
    parser.add_argument("--extra-model-paths", metavar="FILE",
                        help="a ComfyUI-style extra_model_paths.yaml naming more model folders "
                             "(default $GRAPHFLOW_EXTRA_MODEL_PATHS, else ./extra_model_paths.yaml if present)")


def _add_folder_flags(parser) -> None:
    _add_model_folder_flags(parser)
    parser.add_argument("--input-dir", help="folder LoadImage reads from (default ./inputs)")
    parser.add_argument("--output-dir", help="folder results are saved in (default ./outputs)")
    parser.add_argument("--plugins-dir", action="append", help="an extra plugin folder (repeatable)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 or mps (default: the best available)")


def _add_memory_flags(parser) -> None:
    parser.add_argument("--vram", choices=("normal", "low", "none"),
                        help="model memory policy: normal (whole models on the device when they fit, else "
                             "partly), low (at most half the free memory for weights), none (stream every block "
                             "in and out); default normal")
    parser.add_argument("--reserve-vram", type=float, metavar="GB",
                        help="device memory to leave free for other programs (default 0)")


def _add_speed_flags(parser) -> None:
    # choices as graphflow.models.attention.ATTENTION_MODES (not imported: it pulls in torch)
    parser.add_argument("--attention", choices=("auto", "sdpa", "math"),
                        help="attention kernels: auto (per device: cuDNN/flash/memory-efficient on CUDA; the "
                             "default), sdpa (PyTorch's own choice) or math (the unfused reference)")
    parser.add_argument("--channels-last", choices=("on", "off"),
                        help="channels-last convolutions in the UNet and VAE (default: on for CUDA)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the diffusion model (the first run of each image size compiles)")
    parser.add_argument("--compile-mode", choices=COMPILE_MODES,
                        help="torch.compile's mode (implies --compile): reduce-overhead replays each step as a "
                             "CUDA graph; max-autotune also searches kernels (slow to compile)")
    parser.add_argument("--fp8-matmul", action="store_true",
                        help="fp8 matmuls in the diffusion model's Linear layers (GPUs of compute capability "
                             ">= 8.9: Ada, Hopper)")


def _set_speed_options(args) -> int | None:
    """Pass the speed flags on as GRAPHFLOW_* settings (read where the models run); an error
    code when the device cannot do what was asked."""
    if args.attention:
        os.environ["GRAPHFLOW_ATTENTION"] = args.attention
    if args.channels_last:
        os.environ["GRAPHFLOW_CHANNELS_LAST"] = "1" if args.channels_last == "on" else "0"
    if args.compile or args.compile_mode:
        os.environ["GRAPHFLOW_COMPILE"] = "1"
    if args.compile_mode:
        os.environ["GRAPHFLOW_COMPILE_MODE"] = args.compile_mode
    if args.fp8_matmul:
        from graphflow.device import compute_device
        from graphflow.models.fp8_matmul import check_supported

        try:
            check_supported(compute_device())
        except ValueError as e:
            _error(str(e))
            return EXIT_USAGE
        os.environ["GRAPHFLOW_FP8_MATMUL"] = "1"
    return None


def _add_ray_flags(parser) -> None:
    group = parser.add_argument_group("scale-out on Ray (pip install 'graphflow[ray]')")
    where = group.add_mutually_exclusive_group()
    where.add_argument("--ray-workers", type=int, metavar="N", help="start a Ray cluster on this machine with N workers")
    where.add_argument("--ray-address", metavar="ADDR",
                       help="join a running Ray cluster (ray start --head ...): a worker per --gpus-per-worker "
                            "GPUs, a CPU worker on each machine without GPUs; machines may join and leave")
    group.add_argument("--gpus-per-worker", type=float, default=1.0, metavar="G", help="GPUs per worker (default 1)")


def _ray_options(args) -> dict | None:
    """The WorkerPool options from the --ray-* flags (None: run in this process)."""
    if getattr(args, "ray_workers", None) is None and getattr(args, "ray_address", None) is None:
        return None
    if args.ray_workers is not None and args.ray_workers < 1:
        raise ValueError("--ray-workers must be at least 1")
    try:
        import ray  # noqa: F401
    except ImportError:
        raise ValueError("--ray-workers/--ray-address need Ray: pip install 'graphflow[ray]'") from None
    return {"workers": args.ray_workers, "address": args.ray_address, "gpus_per_worker": args.gpus_per_worker}


def _add_limit_flags(parser, server: bool = False) -> None:
    # Defaults of `serve` are graphflow.resource_limits.SERVER_LIMITS (not imported for --help); 0: no limit.
    default = (lambda text: f" (default {text}; 0: no limit)") if server else (lambda text: " (default: none)")
    parser.add_argument("--max-pixels", type=int, metavar="N", help="largest image or latent, in pixels per image"
                        + default("67108864 = 8192x8192"))
    parser.add_argument("--max-batch", type=int, metavar="N", help="largest batch" + default("64"))
    parser.add_argument("--max-steps", type=int, metavar="N", help="most sampling steps per sampler" + default("1000"))
    parser.add_argument("--max-run-seconds", type=float, metavar="S",
                        help="stop a run that takes longer, as an interrupt would" + default("3600"))


def _limits(args, server: bool = False):
    """The RunLimits from the --max-* flags (over the server's defaults for `serve`)."""
    from dataclasses import replace

    from graphflow.resource_limits import SERVER_LIMITS, RunLimits

    limits = SERVER_LIMITS if server else RunLimits()
    for name in ("max_pixels", "max_batch", "max_steps", "max_run_seconds"):
        value = getattr(args, name, None)
        if value is not None:
            limits = replace(limits, **{name: value if value > 0 else None})
    return limits


def _error(message: str) -> None:
    print(f"graphflow: {message}", file=sys.stderr)


def _load(args):
    """The workflow with --set overrides applied, or an exit code."""
    from graphflow.registry import default_registry
    from graphflow.picture_metadata import is_picture_file
    from graphflow.workflow import WorkflowFormatError, load_workflow, parse_workflow, read_json_file

    registry = default_registry()
    for problem in registry.problems:
        kind = "note" if problem.get("kind") == "info" else "plugin problem"
        _error(f"{kind}: {problem.get('message', problem)}")
    try:
        data = None if is_picture_file(args.workflow) else read_json_file(args.workflow)
    except WorkflowFormatError as e:
        _error(str(e))
        return None, None, EXIT_FILE
    try:
        workflow = parse_workflow(data, registry) if data is not None else load_workflow(args.workflow, registry)
    except WorkflowFormatError as e:  # JSON (or a picture), but not a workflow: its problems, as validation reports them
        _print_problems(e.problems)
        return None, None, EXIT_INVALID
    for note in workflow.notes:  # non-fatal remarks of a ComfyUI import
        where = f"node {note['node_id']} ({note['node_type']})" if note.get("node_id") else ""
        where += f", input '{note['input']}'" if note.get("input") else ""
        _error(f"note: {where + ': ' if where else ''}{note['message']}")
    for assignment in getattr(args, "set", []):
        key, sep, raw = assignment.partition("=")
        node_id, dot, name = key.rpartition(".")
        if not sep or not dot:
            _error(f"--set {assignment!r}: expected NODE_ID.INPUT=VALUE")
            return None, None, EXIT_USAGE
        if node_id not in workflow.nodes:
            _error(f"--set {assignment!r}: the workflow has no node {node_id!r}")
            return None, None, EXIT_INVALID
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        workflow.nodes[node_id].inputs[name] = value
    return workflow, registry, None


def _print_problems(problems) -> None:
    _error(f"invalid workflow ({len(problems)} problem{'s' if len(problems) != 1 else ''}):")
    for problem in problems:
        print(f"  - {problem}", file=sys.stderr)


def cmd_validate(args) -> int:
    from graphflow.validation import validate

    workflow, registry, code = _load(args)
    if workflow is None:
        return code
    problems = validate(workflow, registry, limits=_limits(args))
    if problems:
        _print_problems(problems)
        return EXIT_INVALID
    print(f"{args.workflow}: valid ({len(workflow.nodes)} nodes)")
    return EXIT_OK


def cmd_run(args) -> int:
    from graphflow.executor import Executor
    from graphflow.folders import folders

    if args.sweep:
        return cmd_sweep(args)
    if args.ray_workers is not None or args.ray_address is not None:
        _error("--ray-workers/--ray-address run sweeps (--sweep FILE.jsonl); a single run runs in this process")
        return EXIT_USAGE
    workflow, registry, code = _load(args)
    if workflow is None:
        return code
    _set_previews(args)
    interrupt = threading.Event()
    printer = ProgressPrinter(quiet=args.quiet)

    def on_sigint(signum, frame):
        if interrupt.is_set():
            raise KeyboardInterrupt  # main() turns it into a one-line "aborted"
        interrupt.set()
        printer.close()  # end a live progress bar's line first
        _error("interrupting (press Ctrl-C again to abort at once)")

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        result = Executor(registry, limits=_limits(args)).run(workflow, on_event=printer, interrupt=interrupt)
    finally:
        signal.signal(signal.SIGINT, previous)
        printer.close()

    if result.status == "invalid":
        _print_problems(result.problems)
        return EXIT_INVALID
    if result.status == "interrupted":
        err = result.error
        why = "stopped at its time limit" if err.get("time_limit") else "interrupted"
        reason = "" if err.get("time_limit") else err.get("reason", "")  # the node's own, where it stopped the run
        _error(f"{why} in node {err['node_id']} ({err['node_type']})" + (f": {reason}" if reason else ""))
        return EXIT_INTERRUPTED
    if result.status == "error":
        err = result.error
        where = f"node {err['node_id']} ({err['node_type']})" + (f", input '{err['input']}'" if err["input"] else "")
        if err.get("source") not in (None, "builtin"):
            where += f", from plugin '{err['source']}'"
        print(err["traceback"], file=sys.stderr, end="")
        _error(f"{where} failed: {err['exception_type']}: {err['message']}")
        return EXIT_NODE_FAILED
    for node_id, shown in result.outputs.items():
        for image in shown.get("images", []):
            if image.get("type", "output") == "output" and "filename" in image:  # none: sent, not saved
                path = folders.outputs / image.get("subfolder", "") / image["filename"]
                print(path)
        for text in shown.get("text", []):
            # a named entry (comfyui-tooling-nodes' KritaSendText: name, text, content-type) prints as its text
            if isinstance(text, dict) and "text" in text:
                text = f"{text['name']}: {text['text']}" if text.get("name") else text["text"]
            print(text)
    if not args.quiet:
        print(f"done in {result.elapsed:.2f}s ({len(result.executed)} ran, {len(result.cached)} cached)",
              file=sys.stderr)
    return EXIT_OK


def cmd_sweep(args) -> int:
    from pathlib import Path

    from graphflow.sweep import SweepError, SweepProgress, read_results, read_sweep, run_sweep
    from graphflow.validation import validate

    try:
        ray = _ray_options(args)
    except ValueError as e:
        _error(str(e))
        return EXIT_USAGE
    workflow, registry, code = _load(args)
    if workflow is None:
        return code
    try:
        lines = read_sweep(args.sweep)
    except (OSError, SweepError) as e:
        _error(str(e))
        return EXIT_FILE
    problems = validate(workflow, registry, limits=_limits(args))
    if problems:  # the base workflow; each line's overrides are checked when it runs
        _print_problems(problems)
        return EXIT_INVALID
    results = Path(args.results) if args.results else Path(args.sweep).with_suffix(".results.jsonl")
    already = sum(1 for r in read_results(results).values() if r.get("status") == "success")
    progress = SweepProgress(len(lines), already, quiet=args.quiet)
    pool = None
    if ray is not None:
        from graphflow.cluster import WorkerPool

        pool = WorkerPool(**ray, limits=_limits(args))
    stop = threading.Event()

    def on_sigint(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        _error("interrupting the sweep; run the same command again to resume (Ctrl-C again to abort at once)")

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        counts = run_sweep(workflow, lines, results, registry, limits=_limits(args), pool=pool, stop=stop,
                           progress=progress)
    finally:
        signal.signal(signal.SIGINT, previous)
        if pool is not None:
            pool.shutdown()
    if not args.quiet:
        print(f"sweep: {counts['ran']} ran ({counts['failed']} failed), {counts['skipped']} already done; "
              f"results in {results}", file=sys.stderr)
    if counts["interrupted"]:
        return EXIT_INTERRUPTED
    return EXIT_NODE_FAILED if counts["failed"] else EXIT_OK


def cmd_convert(args) -> int:
    from graphflow.comfy_format import convert

    workflow, registry, code = _load(args)
    if workflow is None:
        return code
    text = json.dumps(convert(workflow, args.to, registry), indent=2) + "\n"
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as e:
            _error(f"can't write {args.output}: {e}")
            return EXIT_FILE
    else:
        sys.stdout.write(text)
    return EXIT_OK


def cmd_nodes(args) -> int:
    from graphflow.registry import default_registry

    registry = default_registry()
    if args.json:
        print(json.dumps(registry.catalogue(), indent=2, default=str))
        return EXIT_OK
    # the list needs no catalogue: that lists every choice's options (the model folders, FFmpeg's encoders)
    by_category: dict[str, list] = {}
    for cls in sorted(registry, key=lambda cls: cls.node_type):
        by_category.setdefault(cls.category, []).append(cls)
    for category in sorted(by_category):
        print(f"{category}:")
        for cls in by_category[category]:
            summary = (cls.description().splitlines() or [""])[0]
            source = registry.source(cls.node_type)
            source = "" if source == "builtin" else f" [{source}]"
            print(f"  {cls.node_type:<28}{summary}{source}")
    for problem in registry.problems:
        print(f"problem: {problem.get('message', problem)}", file=sys.stderr)
    return EXIT_OK


def cmd_inspect(args) -> int:
    from graphflow.models.checkpoint_report import inspect_report
    from graphflow.models.weight_files import CheckpointError

    try:
        folder = _model_folder(args.checkpoint)
        if folder is not None:
            from graphflow.models.diffusers_folder import folder_report

            print(folder_report(folder))
        else:
            print(inspect_report(_model_file(args.checkpoint)))
    except (CheckpointError, FileNotFoundError) as e:
        _error(str(e))
        return EXIT_FILE
    return EXIT_OK


def _model_folder(name: str):
    """A diffusers model folder: the path as given, else one of that name under models/diffusers/."""
    from graphflow.folders import UnsafePathError, folders

    if os.path.isdir(name):
        return name
    try:
        return folders.find_model_folder("diffusers", name)
    except (FileNotFoundError, UnsafePathError):
        return None


def _model_file(name: str):
    """A file path as given, else a model file of that name in the models folders (checkpoints
    first, then every other kind's folder)."""
    from graphflow.folders import MODEL_KINDS, UnsafePathError, folders

    if os.path.isfile(name):
        return name
    for kind in MODEL_KINDS:
        try:
            return folders.find_model(kind, name)
        except (FileNotFoundError, UnsafePathError):
            continue
    searched = ", ".join(sorted({str(d.parent) for kind in MODEL_KINDS for d in folders.model_dirs(kind)}))
    raise FileNotFoundError(f"no file {name!r}, and no model file of that name in the folders of {searched}")


def cmd_serve(args) -> int:
    from graphflow.server.app import serve

    _set_previews(args)
    try:
        ray = _ray_options(args)
    except ValueError as e:
        _error(str(e))
        return EXIT_USAGE
    return serve(ray=ray, host=args.host, port=args.port, db_path=args.db, max_upload_mb=args.max_upload_mb,
                 cache_max_gb=args.cache_max_gb, workers=args.workers, run_limits=_limits(args, server=True),
                 allowed_origins=(args.enable_cors_header,) if args.enable_cors_header else (),
                 max_model_upload_mb=args.max_model_upload_mb)


class ProgressPrinter:
    """Turns executor events into progress lines on stderr (a live bar on a terminal)."""

    def __init__(self, quiet: bool = False, stream=None):
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.total = 0
        self.done = 0
        self.started = 0.0
        self._bar_open = False

    def __call__(self, event: dict) -> None:
        if self.quiet:
            return
        kind = event["type"]
        if kind == "run_started":
            self.total, self.started = len(event["nodes"]), time.perf_counter()
        elif kind == "node_started":
            self._line(f"[{self.done + 1}/{self.total}] {event['node_type']} (node {event['node']})")
        elif kind in ("node_finished", "node_cached"):
            self.done += 1
            if kind == "node_finished" and event["elapsed"] >= 0.5:
                self._line(f"[{self.done}/{self.total}] {event['node_type']} (node {event['node']}) "
                           f"done in {event['elapsed']:.2f}s")
        elif kind == "warning":
            self._line(f"warning: node {event['node']} ({event['node_type']}): {event['message']}")
        elif kind == "progress" and event["max"]:
            value, total = event["value"], event["max"]
            width = 30
            filled = int(width * value / total)
            bar = f"  {event['node_type']} |{'#' * filled}{'.' * (width - filled)}| {value}/{total}"
            if self.live:
                # marked open before it is written: the Ctrl-C handler (which Python may run between
                # any two lines here) closes an open bar first, else its message joins the bar's line
                self._bar_open = True
                self.stream.write("\r" + bar)
                self.stream.flush()
            elif value == total:
                self._line(bar)

    def _line(self, text: str) -> None:
        if self._bar_open:
            self.stream.write("\n")
            self._bar_open = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._bar_open:
            self.stream.write("\n")
            self._bar_open = False


if __name__ == "__main__":
    sys.exit(main())
