// The server's websocket (docs/api.md): JSON event messages and binary preview frames,
// reconnecting with backoff. On (re)connect the server sends a `status` snapshot.

const PREVIEW_FRAME = 4;

export class LiveConnection {
  constructor(clientId, {onMessage, onPreview, onState}) {
    this.clientId = clientId;
    this.onMessage = onMessage;
    this.onPreview = onPreview;
    this.onState = onState;
    this.delay = 500;
    this.socket = null;
    this.connect();
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/ws?client_id=${encodeURIComponent(this.clientId)}`);
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    socket.onopen = () => {
      this.delay = 500;
      this.onState("connected");
    };
    socket.onclose = () => {
      this.onState("disconnected");
      setTimeout(() => this.connect(), this.delay);
      this.delay = Math.min(this.delay * 2, 8000);
    };
    socket.onmessage = (event) => {
      if (typeof event.data === "string") {
        let message;
        try {
          message = JSON.parse(event.data);
        } catch {
          return;
        }
        this.onMessage(message.type, message.data || {});
        return;
      }
      const view = new DataView(event.data);
      if (event.data.byteLength < 8 || view.getUint32(0) !== PREVIEW_FRAME) return;
      const length = view.getUint32(4);
      const meta = JSON.parse(new TextDecoder().decode(new Uint8Array(event.data, 8, length)));
      const blob = new Blob([new Uint8Array(event.data, 8 + length)], {type: meta.image_type || "image/jpeg"});
      this.onPreview(meta, blob);
    };
  }
}
