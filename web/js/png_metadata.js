// Text chunks of a PNG file (tEXt, zTXt, iTXt): SaveImage embeds the workflow there
// (key "graphflow"; ComfyUI writes "prompt" and "workflow").

const SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];

async function inflate(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** {keyword: text} of every text chunk; throws if `buffer` isn't a PNG. */
export async function readPngText(buffer) {
  const bytes = new Uint8Array(buffer);
  if (!SIGNATURE.every((b, i) => bytes[i] === b)) throw new Error("not a PNG file");
  const view = new DataView(buffer);
  const latin1 = new TextDecoder("latin1");
  const utf8 = new TextDecoder("utf-8");
  const chunks = {};
  let offset = 8;
  while (offset + 8 <= bytes.length) {
    const length = view.getUint32(offset);
    const type = latin1.decode(bytes.subarray(offset + 4, offset + 8));
    const data = bytes.subarray(offset + 8, offset + 8 + length);
    offset += 12 + length;
    if (type === "IEND") break;
    if (type !== "tEXt" && type !== "zTXt" && type !== "iTXt") continue;
    const zero = data.indexOf(0);
    if (zero < 0) continue;
    const key = latin1.decode(data.subarray(0, zero));
    if (type === "tEXt") {
      chunks[key] = latin1.decode(data.subarray(zero + 1));
    } else if (type === "zTXt") {
      chunks[key] = latin1.decode(await inflate(data.subarray(zero + 2)));
    } else {
      const compressed = data[zero + 1] === 1;
      let at = zero + 3;
      at = data.indexOf(0, at) + 1; // language tag
      at = data.indexOf(0, at) + 1; // translated keyword
      const text = data.subarray(at);
      chunks[key] = utf8.decode(compressed ? await inflate(text) : text);
    }
  }
  return chunks;
}
