"""Write graphflow/comfy_catalogue.json, the facts about ComfyUI's core nodes that reading its
UI-format workflows needs: each class's inputs in `input_order` (which are widgets, which
carry the extra control_after_generate or upload value in `widgets_values`, widget defaults)
and its outputs.

    .venv/bin/python tools/make_comfy_catalogue.py PATH/TO/comfyui-object-info.json

The source is ComfyUI's `GET /object_info` (the copy the project keeps under
shared/reference/). The package ships the compact result, never the source file.
"""

import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "graphflow" / "comfy_catalogue.json"
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
# types ComfyUI's editor draws a widget of its own for, whose value `widgets_values` holds
# (WebcamCapture's image: ["", 480, 360, true, "capture"], the last its capture button's)
FRONTEND_WIDGET_TYPES = {"WEBCAM"}
UPLOAD_FLAGS = ("image_upload", "file_upload", "video_upload")


def compact(info: dict) -> dict:
    inputs = []
    for section in ("required", "optional"):
        declared = info["input"].get(section, {})
        for name in info.get("input_order", {}).get(section, list(declared)):
            spec = declared[name]
            kind, options = spec[0], (spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {})
            is_list = isinstance(kind, list)
            widget = (is_list or kind in WIDGET_TYPES | FRONTEND_WIDGET_TYPES) and not options.get("forceInput")
            entry = {"name": name, "type": "COMBO" if is_list else kind}
            if widget:
                entry["widget"] = True
                default = options.get("default", kind[0] if is_list and kind else None)
                if default is None and kind == "COMBO" and options.get("options"):
                    default = options["options"][0]
                if default is not None:
                    entry["default"] = default
                # the editor's rule: the option if given (an explicit false too), else an INT named
                # seed or noise_seed
                control = options.get("control_after_generate")
                if control or (control is None and kind == "INT" and name in ("seed", "noise_seed")):
                    entry["control"] = True
                if any(options.get(flag) for flag in UPLOAD_FLAGS):
                    entry["upload"] = True
                if options.get("dynamicPrompts"):  # the editor resolves {a|b} and comments when it queues
                    entry["dynamic"] = True
            if section == "optional":
                entry["optional"] = True
            inputs.append(entry)
    flags = {flag: True for flag in ("deprecated", "experimental") if info.get(flag)}  # /object_info says them
    return {"inputs": inputs,
            "outputs": [{"name": n, "type": t} for n, t in zip(info["output_name"], info["output"])],
            "output_node": bool(info.get("output_node")), "category": info.get("category", "")} | flags


def main(source: str) -> None:
    info = json.loads(Path(source).read_text(encoding="utf-8"))
    nodes = {name: compact(entry) for name, entry in sorted(info.items())
             if not entry.get("python_module", "").startswith("comfy_api_nodes")}  # paid cloud-API nodes
    data = {"source": "ComfyUI v0.3.64 GET /object_info, compacted by tools/make_comfy_catalogue.py "
                      "(cloud API nodes left out); regenerate with that tool, do not edit",
            "nodes": nodes}
    lines = ["{", f'"source": {json.dumps(data["source"])},', '"nodes": {']
    items = [f"{json.dumps(name)}: {json.dumps(entry, separators=(',', ':'))}" for name, entry in nodes.items()]
    lines.append(",\n".join(items))
    lines += ["}", "}"]
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {OUT} ({len(nodes)} classes)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/reference/comfyui-object-info.json")
