"""Request bodies to validated inputs, with bounded work per request.

Every body is counted before it is parsed: a comma separates JSON values, so `body.count(b",")`
bounds how many values parsing would create, and a body over the request's limit is refused (413)
without parsing it. `/predict` is then validated by its pydantic model (lists fail at their first
bad value); a batch of windows is parsed by simdjson straight into one NumPy array (ten times
faster than building Python lists), or read from a `.npy` body. Errors name the field and index.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pydantic_core
from pydantic import ValidationError

from har_assets.serving.errors import ApiError, validation_error
from har_assets.serving.schemas import MAX_ABS_VALUE, PredictRequest

JSON = "application/json"
NPY = "application/x-npy"
LISTS_PER_REQUEST = 8  # /predict: two sensors, each timestamps_ms, x, y, z


def guard_values(body: bytes, limit: int, limits: str) -> None:
    """413, before any parsing, when the body holds more JSON values than `limit`."""
    values = body.count(b",") + 1
    if values > limit:
        raise ApiError(413, "too_large", f"the body holds {values} values or more; at most {limit} are accepted "
                       f"({limits})", ["body"])


def json_syntax_error(body: bytes, fallback: str) -> ApiError:
    """400 naming the line and column where the body stops being JSON (NaN and Infinity are not JSON)."""
    try:
        pydantic_core.from_json(body, allow_inf_nan=False)
    except ValueError as exc:
        return validation_error([{"type": "json_invalid", "msg": f"Invalid JSON: {exc}"}])
    return validation_error([{"type": "json_invalid", "msg": f"Invalid JSON: {fallback}"}])


def decode_predict(body: bytes, max_samples: int) -> PredictRequest:
    """The validated /predict body; 413 over the sample limit, 400 for malformed JSON, 422 naming each field."""
    guard_values(body, LISTS_PER_REQUEST * max_samples + 16,
                 f"{LISTS_PER_REQUEST} lists of at most {max_samples} samples, HAR_MAX_SAMPLES")
    try:
        return PredictRequest.model_validate_json(body)
    except ValidationError as exc:
        raise validation_error(exc.errors(include_url=False, include_input=False, include_context=False)) from None


def decode_windows(body: bytes, content_type: str, max_windows: int, shape: tuple[int, int]) -> np.ndarray:
    """(n, window_size, channels) float32 from a JSON `{"windows": [...]}` or a `.npy` body, checked for shape,
    count and finite values within the sensors' range."""
    size, channels = shape
    if content_type == NPY:
        X = _npy(body)
    else:
        guard_values(body, max_windows * size * channels + 16,
                     f"{max_windows} windows of {size} × {channels} values, HAR_MAX_WINDOWS")
        X = _json_windows(body, size, channels)
    _check_shape(X, max_windows, size, channels)
    _check_values(X)
    return X.astype(np.float32, copy=False)


NPY_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def _invalid_npy(reason: str) -> ApiError:
    return ApiError(400, "invalid_npy", f"the body is not a NumPy .npy array: {reason}", ["body"])


def _npy(body: bytes) -> np.ndarray:
    """The array of a `.npy` body, read in place: its header is checked against the bytes that follow it before
    anything is allocated (a ~100-byte header may declare petabytes), and Python objects (pickles) are refused."""
    stream = io.BytesIO(body)
    try:
        version = np.lib.format.read_magic(stream)
        read_header = NPY_HEADER_READERS.get(version)
        if read_header is None:
            raise ValueError(f"format version {version[0]}.{version[1]} is not accepted (np.save writes 1.0)")
        shape, fortran_order, dtype = read_header(stream)
    except ValueError as exc:
        raise _invalid_npy(str(exc)) from None
    if dtype.hasobject:
        raise _invalid_npy(f"its dtype {dtype} holds Python objects, which would need unpickling; send numbers")
    if any(n < 0 for n in shape):
        raise _invalid_npy(f"its header declares the negative shape {shape}")
    declared, present = math.prod(shape) * dtype.itemsize, len(body) - stream.tell()
    if declared != present:
        raise _invalid_npy(f"its header declares shape {shape} of {dtype}, {declared} bytes, but {present} bytes "
                           "follow the header")
    if dtype.kind not in "fiu":
        raise ApiError(422, "validation", f"the .npy array must hold numbers, not {dtype}", ["body", "windows"])
    return np.frombuffer(body, dtype, offset=stream.tell()).reshape(shape, order="F" if fortran_order else "C")


def _check_shape(X: np.ndarray, max_windows: int, size: int, channels: int) -> None:
    if X.ndim != 3 or X.shape[1:] != (size, channels):
        raise ApiError(422, "validation", f"windows must have shape (n, {size}, {channels}) (window_size, "
                       f"channels of the model), got {X.shape}", ["body", "windows"])
    if X.shape[0] == 0:
        raise ApiError(422, "validation", "at least one window is needed", ["body", "windows"])
    if X.shape[0] > max_windows:
        raise ApiError(413, "too_large", f"{X.shape[0]} windows; the limit is {max_windows} per request "
                       "(HAR_MAX_WINDOWS)", ["body", "windows"])


def _check_values(X: np.ndarray) -> None:
    bad = ~np.isfinite(X) | (np.abs(X) > MAX_ABS_VALUE)
    if bad.any():
        i, j, k = (int(v) for v in np.argwhere(bad)[0])
        raise ApiError(422, "validation", f"value {X[i, j, k]!r} is not a finite number within ±{MAX_ABS_VALUE:g}",
                       ["body", "windows", i, j, k])


def _json_windows(body: bytes, size: int, channels: int) -> np.ndarray:
    import simdjson

    parser = simdjson.Parser()  # one per request: a parser's documents must not outlive its next parse
    try:
        doc = parser.parse(body)
    except (ValueError, RuntimeError, UnicodeDecodeError) as exc:
        raise json_syntax_error(body, str(exc)) from None
    if not isinstance(doc, simdjson.Object):
        raise ApiError(422, "validation", "the body must be a JSON object {\"windows\": [...]}", ["body"])
    extra = sorted(set(doc.keys()) - {"windows"})
    if extra:
        raise ApiError(422, "validation", f"unknown field '{extra[0]}'", ["body", extra[0]])
    windows = doc.get("windows")
    if not isinstance(windows, simdjson.Array):
        raise ApiError(422, "validation", "windows is required: a list of windows, each a list of samples",
                       ["body", "windows"])
    for i, window in enumerate(windows):
        if not isinstance(window, simdjson.Array) or len(window) != size:
            got = f"has {len(window)} samples" if isinstance(window, simdjson.Array) else "is not a list"
            raise ApiError(422, "validation", f"window {i} {got}; the model takes {size} (window_size)",
                           ["body", "windows", i])
        for j, sample in enumerate(window):
            if not isinstance(sample, simdjson.Array) or len(sample) != channels:
                got = f"has {len(sample)} channels" if isinstance(sample, simdjson.Array) else "is not a list"
                raise ApiError(422, "validation", f"sample {j} of window {i} {got}; the model takes {channels}",
                               ["body", "windows", i, j])
    try:
        flat = np.frombuffer(windows.as_buffer(of_type="d"), dtype=np.float64)
    except (TypeError, ValueError, RuntimeError):
        raise _first_non_number(windows) from None
    return flat.reshape(len(windows), size, channels)


def _first_non_number(windows: object) -> ApiError:
    """422 at the first value that is not a number: narrowed to the window, the sample, then the value."""
    def numbers(array: object) -> bool:
        try:
            array.as_buffer(of_type="d")  # type: ignore[attr-defined]
            return True
        except (TypeError, ValueError, RuntimeError):
            return False

    for i, window in enumerate(windows):  # type: ignore[attr-defined]
        if numbers(window):
            continue
        for j, sample in enumerate(window):
            if numbers(sample):
                continue
            for k in range(len(sample)):
                try:
                    value = sample[k]
                except (ValueError, RuntimeError):  # a number simdjson cannot represent, e.g. a huge integer
                    value = None
                if not isinstance(value, int | float) or isinstance(value, bool):
                    return ApiError(422, "validation", "Input should be a finite number",
                                    ["body", "windows", i, j, k])
    return ApiError(422, "validation", "a value is not a number", ["body", "windows"])
