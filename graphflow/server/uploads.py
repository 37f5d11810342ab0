"""Files from and to clients: uploads into inputs/, and which files /api/view may serve.

A client names files only inside a folder: a file name has no path separators and no leading
dot, a subfolder has no `..` or absolute part, and the resolved path (symlinks followed) must
stay in the folder (graphflow.folders.safe_join). Uploads must be real images or videos of an
allowed format within the size and dimension limits, checked by decoding them with Pillow (a
video's first frame with PyAV).
"""

import hashlib
import io
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp import BodyPartReader, web

from graphflow.folders import UnsafePathError, folders, safe_join

# Formats an upload may have, and the extension it is stored under (LoadImage lists these).
# A GIF's frames are LoadImage's batch, as in ComfyUI.
UPLOAD_FORMATS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "BMP": ".bmp", "GIF": ".gif", "TIFF": ".tif"}
FORMAT_EXTENSIONS = {"PNG": {".png"}, "JPEG": {".jpg", ".jpeg"}, "WEBP": {".webp"}, "BMP": {".bmp"}, "GIF": {".gif"},
                     "TIFF": {".tif", ".tiff"}}
# Video containers (FFmpeg's names for them), checked by decoding with PyAV (LoadVideo lists these).
VIDEO_FORMATS = {"mov,mp4,m4a,3gp,3g2,mj2": ".mp4", "matroska,webm": ".webm", "avi": ".avi"}
UPLOAD_FORMATS.update(VIDEO_FORMATS)
FORMAT_EXTENSIONS.update({"mov,mp4,m4a,3gp,3g2,mj2": {".mp4", ".mov", ".m4v"}, "matroska,webm": {".webm", ".mkv"},
                          "avi": {".avi"}})
DECLARED_TYPES = {"image/png", "image/jpeg", "image/jpg", "image/webp", "image/bmp", "image/x-ms-bmp", "image/gif",
                  "image/tiff", "video/mp4", "video/webm", "video/quicktime", "video/x-matroska", "video/x-msvideo",
                  "application/octet-stream", ""}
VIEW_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp",
              ".bmp": "image/bmp", ".gif": "image/gif", ".tif": "image/tiff", ".tiff": "image/tiff", ".mp4": "video/mp4", ".m4v": "video/mp4",
              ".mov": "video/quicktime", ".webm": "video/webm", ".mkv": "video/x-matroska", ".avi": "video/x-msvideo"}
FIELD_LIMIT = 4096  # bytes in a non-file form field


class RequestError(Exception):
    """A request the server refuses (bad JSON, a bad upload, a file outside its folder...);
    it answers {"error": message} with `status`."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class UploadLimits:
    max_bytes: int = 50 * 2**20
    max_side: int = 8192
    # all frames of an animated picture together (LoadImage makes them one batch): 1024 of 512x512
    max_animation_pixels: int = 2**28


def clean_filename(name: str | None) -> str:
    """A client's file name, refused if it is anything but a plain name."""
    if not name or not name.strip():
        raise RequestError(400, "the upload has no file name")
    if any(c in name for c in "/\\") or name in (".", "..") or name.startswith("."):
        raise RequestError(400, f"file name {name!r} must be a plain name (no path separators, no leading dot)")
    if any(ord(c) < 32 or c == "\x7f" for c in name) or len(name.encode()) > 255:
        raise RequestError(400, f"file name {name!r} has control characters or is too long")
    return name


def clean_subfolder(subfolder: str | None) -> str:
    if not subfolder:
        return ""
    parts = subfolder.replace("\\", "/").split("/")
    if subfolder.startswith(("/", "\\")) or any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        raise RequestError(400, f"subfolder {subfolder!r} must be a relative path inside its folder "
                               "(no '..', no absolute path, no hidden parts)")
    if "\\" in subfolder or any(ord(c) < 32 for c in subfolder):
        raise RequestError(400, f"subfolder {subfolder!r} has invalid characters")
    return "/".join(parts)


def folder_of(kind: str) -> Path:
    bases = {"output": folders.outputs, "input": folders.inputs, "temp": folders.temp}
    if kind not in bases:
        raise RequestError(400, f"type must be one of output, input, temp; got {kind!r}")
    return bases[kind]


def resolve_view(kind: str, subfolder: str | None, filename: str | None) -> Path:
    """The file /api/view may serve, or an RequestError (400 unsafe, 404 missing)."""
    base = folder_of(kind or "output")
    name = clean_filename(filename)
    sub = clean_subfolder(subfolder)
    # inputs are found where runs find them: the user's folder first, then the bundled examples
    bases = folders.input_dirs() if kind == "input" else [base]
    try:
        paths = [safe_join(b, f"{sub}/{name}" if sub else name) for b in bases]
    except UnsafePathError as e:
        raise RequestError(400, str(e)) from None
    path = next((p for p in paths if p.is_file()), paths[0])
    if path.suffix.lower() not in VIEW_TYPES:
        raise RequestError(400, f"{name!r} is not an image or video file this server serves")
    if not path.is_file():
        raise RequestError(404, f"no file {name!r} in the {kind or 'output'} folder"
                               + (f" (subfolder {sub!r})" if sub else ""))
    return path


async def read_form(request: web.Request, limits: UploadLimits, file_fields=("image",)) -> tuple[dict, dict]:
    """The multipart form: text fields, and the file {"filename", "content_type", "data"}.

    Refuses a body over the limit before reading it when its length is declared, and stops
    reading as soon as the file passes the limit otherwise."""
    if request.content_length is not None and request.content_length > limits.max_bytes + 64 * 1024:
        raise RequestError(413, f"upload of {request.content_length} bytes is over the limit of {limits.max_bytes} bytes")
    if not request.content_type.startswith("multipart/"):
        raise RequestError(400, "expected a multipart/form-data body with the file in the 'image' field")
    reader = await request.multipart()
    fields, upload = {}, None
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise RequestError(400, "nested multipart bodies are not accepted")
        if part.name in file_fields and upload is None:
            data = bytearray()
            while chunk := await part.read_chunk(256 * 1024):
                data += chunk
                if len(data) > limits.max_bytes:
                    raise RequestError(413, f"upload is over the limit of {limits.max_bytes} bytes")
            declared = (part.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            upload = {"filename": part.filename, "content_type": declared, "data": bytes(data)}
        else:
            value = await part.read(decode=True)
            if len(value) > FIELD_LIMIT:
                raise RequestError(400, f"form field {part.name!r} is too long")
            fields[part.name] = value.decode("utf-8", "replace")
    if upload is None:
        raise RequestError(400, f"no file in the form (expected a field named {' or '.join(file_fields)!r})")
    return fields, upload


def check_image(data: bytes, declared_type: str, limits: UploadLimits) -> dict:
    """Decode the image with Pillow: allowed format, within the dimension limit, not truncated;
    every frame of an animated one, all of them within the animation limit."""
    from PIL import Image, ImageSequence, UnidentifiedImageError

    if declared_type not in DECLARED_TYPES:
        raise RequestError(415, f"content type {declared_type!r} is not an accepted image type "
                               f"(png, jpeg, webp, bmp, gif, tiff)")
    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt = image.format
            width, height = image.size
            if fmt not in UPLOAD_FORMATS:
                raise RequestError(415, f"image format {fmt} is not accepted; use PNG, JPEG, WebP, BMP, GIF or TIFF")
            if width > limits.max_side or height > limits.max_side:
                raise RequestError(400, f"image is {width}x{height}; the limit is {limits.max_side}x{limits.max_side}")
            image.load()  # decode fully: truncated or corrupt data fails here
            frames = getattr(image, "n_frames", 1)
            if frames > 1:
                if frames * width * height > limits.max_animation_pixels:
                    raise RequestError(400, f"the animation has {frames} frames of {width}x{height}; the limit is "
                                            f"{limits.max_animation_pixels} pixels in all")
                for frame in ImageSequence.Iterator(image):
                    frame.load()
    except RequestError:
        raise
    except UnidentifiedImageError:  # its text names Python's in-memory file object: say it plainly
        raise RequestError(415, "the upload is not an image Pillow can read (expected PNG, JPEG, WebP, BMP, GIF or TIFF data)") from None
    except Image.DecompressionBombError:
        raise RequestError(400, "the image has too many pixels to decode safely") from None
    except (OSError, SyntaxError, ValueError) as e:  # truncated or corrupt: Pillow says what broke
        raise RequestError(415, f"the upload is not a readable image: {e}") from None
    return {"format": fmt, "width": width, "height": height}


def check_upload(data: bytes, declared_type: str, limits: UploadLimits) -> dict:
    """check_video for what starts like a video container, else check_image."""
    from graphflow.video import is_video

    return (check_video if is_video(data) else check_image)(data, declared_type, limits)


def check_video(data: bytes, declared_type: str, limits: UploadLimits) -> dict:
    """Open the video with PyAV and decode its first frame: allowed container, a video stream
    within the dimension limit, frames that decode."""
    import av

    if declared_type not in DECLARED_TYPES:
        raise RequestError(415, f"content type {declared_type!r} is not an accepted image or video type "
                               "(png, jpeg, webp, bmp, gif, tiff, mp4, webm, mov, mkv, avi)")
    try:
        with av.open(io.BytesIO(data)) as container:
            fmt = container.format.name
            if fmt not in VIDEO_FORMATS:
                raise RequestError(415, f"video container {fmt} is not accepted; use MP4, MOV, WebM, MKV or AVI")
            if not container.streams.video:
                raise RequestError(415, "the upload has no video stream")
            stream = container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            if width > limits.max_side or height > limits.max_side:
                raise RequestError(400, f"video is {width}x{height}; the limit is {limits.max_side}x{limits.max_side}")
            if next(container.decode(stream), None) is None:
                raise RequestError(415, "the video has no frames")
    except av.FFmpegError as e:
        raise RequestError(415, f"the upload is not a readable video: {e}") from None
    return {"format": fmt, "width": width, "height": height}


STAGED_PREFIX = ".upload-"  # a file being written: hidden, so no loader or listing offers it
STALE_AFTER = 3600  # seconds: a staged file left by a killed server (one being written is newer)
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def staged_file(directory: Path):
    """(file open for writing, its path): a hidden temporary file in `directory` with the mode a
    new file gets under the umask (mkstemp's own is 0600: a stored model or picture would be
    unreadable to the other users of a shared folder). Removed on leaving unless published."""
    fd, name = tempfile.mkstemp(prefix=STAGED_PREFIX, dir=directory)
    temp = Path(name)
    try:
        file = os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        temp.unlink(missing_ok=True)
        raise
    try:
        os.fchmod(file.fileno(), 0o666 & ~_UMASK)
        yield file, temp
    finally:
        file.close()
        temp.unlink(missing_ok=True)


def publish_file(temp: Path, target: Path, overwrite: bool) -> bool:
    """Give the written staged file its name: replacing what is there (overwrite), or only where the
    name is free, told by os.link failing (no race between a check and the rename). False where
    the name was taken."""
    if overwrite:
        os.replace(temp, target)
        return True
    try:
        os.link(temp, target)
    except FileExistsError:
        return False
    except OSError:  # a filesystem without hard links: the check and the rename, a moment apart
        if target.exists():
            return False
        os.replace(temp, target)
    return True


def sweep_staged(directories) -> int:
    """Remove the staged files a killed server left in `directories` (not their subfolders):
    those older than STALE_AFTER. Returns how many."""
    import time

    removed = 0
    for directory in directories:
        try:
            staged = [p for p in Path(directory).glob(STAGED_PREFIX + "*") if p.is_file()]
        except OSError:
            continue
        for path in staged:
            try:
                if time.time() - path.stat().st_mtime > STALE_AFTER:
                    path.unlink()
                    removed += 1
            except OSError:
                pass
    return removed


def store_upload(data: bytes, filename: str, subfolder: str, fmt: str, overwrite: bool, kind: str = "input") -> dict:
    """Write an upload into <kind's folder>/<subfolder>/ atomically (kind: ComfyUI's `type`,
    input, output or temp); returns the upload response."""
    stem, suffix = os.path.splitext(filename)
    if suffix.lower() not in FORMAT_EXTENSIONS[fmt]:
        suffix = UPLOAD_FORMATS[fmt]  # the name says another format than the content has
    name = stem + suffix
    base = folder_of(kind)
    try:
        folder = safe_join(base, subfolder) if subfolder else base.resolve()
        base.mkdir(parents=True, exist_ok=True)
        folder.mkdir(parents=True, exist_ok=True)
        folder = safe_join(base, subfolder) if subfolder else base.resolve()
        target = safe_join(folder, name)
        if not overwrite:
            digest = hashlib.sha256(data).digest()
            counter = 1
            while target.exists():
                if target.is_file() and hashlib.sha256(target.read_bytes()).digest() == digest:
                    break  # the same file is already there: reuse it
                name = f"{stem} ({counter}){suffix}"
                target = safe_join(folder, name)
                counter += 1
    except UnsafePathError as e:
        raise RequestError(400, str(e)) from None
    if target.exists() and not target.is_file():
        raise RequestError(400, f"{name!r} exists and is not a file")
    with staged_file(target.parent) as (f, temp):
        f.write(data)
        f.close()
        publish_file(temp, target, overwrite=True)  # the name is free, this upload's to replace, or the same file
    path = f"{subfolder}/{name}" if subfolder else name
    if kind != "input":  # LoadImage's value for a file in another folder: ComfyUI's annotated name
        path = f"{path} [{kind}]"
    return {"name": name, "subfolder": subfolder, "type": kind, "path": path}


def apply_mask(original: Path, mask_data: bytes) -> bytes:
    """The original image with the mask as its alpha channel (PNG bytes); see docs/api.md."""
    from PIL import Image, ImageOps
    from PIL.PngImagePlugin import PngInfo

    with Image.open(original) as source, Image.open(io.BytesIO(mask_data)) as mask:
        # the original's text chunks go along, as in ComfyUI (a saved output's workflow and prompt)
        text = PngInfo()
        for key, value in (getattr(source, "text", None) or {}).items():
            text.add_text(key, value)
        image = ImageOps.exif_transpose(source).convert("RGBA")
        if "A" in mask.getbands():
            alpha = mask.getchannel("A")
        else:
            alpha = ImageOps.invert(mask.convert("L"))  # white = painted = to change
        if alpha.size != image.size:
            alpha = alpha.resize(image.size, Image.Resampling.BILINEAR)
        image.putalpha(alpha)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", pnginfo=text)
        return buffer.getvalue()


def converted(path: Path, preview: str | None, channel: str) -> tuple[bytes, str]:
    """ComfyUI's /view conversions: `channel` rgb (no alpha) or a (the alpha alone, on black), then
    `preview` "webp;90" / "jpeg;90" re-encodes at that quality ("png", ours, losslessly: the editor
    paints masks on TIFFs, which browsers don't show, through it). As ComfyUI reads them, another
    channel is the picture as it is, and another preview format, or jpeg with a channel naming
    alpha ("a", "rgba"), is webp, a quality that is no number 90. `channel` "" is none given.
    Returns (bytes, content type)."""
    from PIL import Image

    fmt, quality = "png", 90
    if preview is not None:
        fmt, _, q = preview.partition(";")
        fmt = fmt.strip().lower()
        if fmt not in ("webp", "jpeg", "png") or (fmt == "jpeg" and "a" in channel):
            fmt = "webp"
        quality = min(max(int(q), 1), 100) if q.strip().isdecimal() and q.strip().isascii() else 90
    if channel not in ("rgb", "a"):
        channel = "rgba"
    with Image.open(path) as image:
        image.load()
        if channel == "rgb" or fmt == "jpeg":
            image = image.convert("RGB")
        elif channel == "a":
            alpha = image.convert("RGBA").getchannel("A")
            image = Image.new("RGBA", image.size)
            image.putalpha(alpha)
        buffer = io.BytesIO()
        image.save(buffer, format=fmt.upper(), **({"quality": quality} if fmt != "png" else {}))
    return buffer.getvalue(), f"image/{fmt}"


def thumbnail(path: Path, size: int) -> bytes:
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB")
        image.thumbnail((size, size))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=85)
        return buffer.getvalue()
