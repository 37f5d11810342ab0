// What a file dropped on the canvas becomes: a picture carrying a graph (SaveImage's PNG,
// ComfyUI's, A1111 parameters) opens that graph, asking first over unsaved edits; any other
// picture becomes a LoadImage node where it was dropped, the file uploaded to the inputs;
// everything else is read as a workflow file.

import {api} from "./api_client.js";
import {carriesWorkflow} from "./gallery.js";

/** "workflow" or "image": what to make of a dropped file. */
export async function dropKind(file) {
  const isImage = file.type.startsWith("image/") || /\.(png|jpe?g|webp|gif|bmp)$/i.test(file.name);
  if (!isImage) return "workflow";
  const buffer = await file.arrayBuffer();
  const head = new Uint8Array(buffer, 0, Math.min(12, buffer.byteLength));
  const isPng = head[0] === 0x89 && head[1] === 0x50;
  const isWebp = String.fromCharCode(...head.subarray(0, 4)) === "RIFF" && String.fromCharCode(...head.subarray(8, 12)) === "WEBP";
  if (isPng) return (await carriesWorkflow(buffer)) ? "workflow" : "image";
  if (isWebp) {
    // A WebP's graph sits in EXIF, which the server reads: ask it.
    try {
      const bytes = new Uint8Array(buffer);
      let text = "";
      for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
      await api.convertPicture(btoa(text), file.name);
      return "workflow";
    } catch {
      return "image";
    }
  }
  return "image";
}

/** Upload `file` and add a LoadImage node showing it at world point `at`; returns the node or null. */
export async function addLoadImage(app, file, at) {
  const spec = app.catalogue.get("LoadImage");
  if (!spec) return null;
  const path = await app.upload(file);
  if (!path) return null;
  const node = app.editor.addNode(app.catalogue.get("LoadImage"), at);
  app.editor.amendValues(node.id, {image: path});
  return node;
}
