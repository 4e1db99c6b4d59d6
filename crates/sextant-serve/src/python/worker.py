"""Sextant's Python model worker.

Usage: python worker.py MODEL_DIR

Loads an MLflow model with ``mlflow.pyfunc.load_model(MODEL_DIR)`` and answers
predict requests, one at a time, in framed messages on stdin and stdout. The
protocol is documented at the top of ``src/python/protocol.rs`` in the Sextant
sources; this script is embedded in the ``sextant`` binary and written next to
its cache when a model is served. Everything it has to say besides frames goes
to stderr, which the server logs.
"""

import os
import struct
import sys

PROTOCOL_VERSION = 1
MAGIC = b"SXPW"
PREFIX = struct.Struct("<4sIQ")
BUFFER_ALIGN = 8
# Exception messages go back to the client; MLflow's schema errors quote the
# whole request, so they are cut.
MAX_MESSAGE_CHARS = 4000


def claim_protocol_channel():
    """Keeps the pipes to the server for frames only.

    User code may print, log to stdout or write to file descriptor 1 from
    native code; all of that must reach stderr instead of corrupting frames.
    So frames travel on private duplicates of descriptors 0 and 1 (which
    subprocesses do not inherit), descriptor 1 becomes a copy of stderr, and
    descriptor 0 reads /dev/null so that nothing else can consume requests.
    """
    frames_in = os.fdopen(os.dup(0), "rb")
    frames_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    # sys.stdout now writes to stderr's pipe, but block-buffered; stderr is
    # line-buffered, so prints reach the log as they happen.
    sys.stdout = sys.stderr
    return frames_in, frames_out


class ProtocolError(Exception):
    """The server sent something that is not a valid frame."""


class UnsupportedOutput(Exception):
    """The model returned a value that has no tensor form."""


def read_exact(stream, n):
    data = stream.read(n)
    if data is None or len(data) != n:
        raise ProtocolError(f"input ended inside a frame ({len(data or b'')} of {n} bytes)")
    return data


def read_frame(stream):
    """Returns (header, body), or None at EOF between frames."""
    import json

    prefix = stream.read(PREFIX.size)
    if not prefix:
        return None
    if len(prefix) != PREFIX.size:
        raise ProtocolError("input ended inside a frame prefix")
    magic, header_len, body_len = PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise ProtocolError(f"bad frame magic {magic!r}")
    header = json.loads(read_exact(stream, header_len))
    # A bytearray, so that numpy arrays made on it are writable: models may
    # modify their inputs in place.
    body = bytearray(body_len)
    view = memoryview(body)
    filled = 0
    while filled < body_len:
        n = stream.readinto(view[filled:])
        if not n:
            raise ProtocolError(f"input ended inside a frame body ({filled} of {body_len} bytes)")
        filled += n
    return header, body


def write_frame(stream, header, buffers=()):
    """Writes a frame; `buffers` are (offset, bytes-like) in body order, as
    laid out by Body."""
    import json

    header_bytes = json.dumps(header, allow_nan=False).encode("utf-8")
    body_len = 0
    for offset, data in buffers:
        body_len = offset + len(data)
    stream.write(PREFIX.pack(MAGIC, len(header_bytes), body_len))
    stream.write(header_bytes)
    written = 0
    for offset, data in buffers:
        if offset > written:
            stream.write(bytes(offset - written))
        stream.write(data)
        written = offset + len(data)
    stream.flush()


class Body:
    """Lays out tensor buffers in a frame body, each aligned."""

    def __init__(self):
        self.buffers = []
        self.size = 0

    def add(self, data):
        offset = -(-self.size // BUFFER_ALIGN) * BUFFER_ALIGN
        self.buffers.append((offset, data))
        self.size = offset + len(data)
        return offset


def exception_type_name(exc):
    """The type as the traceback's last line names it."""
    cls = type(exc)
    if cls.__module__ in ("builtins", "__main__"):
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def short_message(exc):
    message = str(exc)
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[:MAX_MESSAGE_CHARS] + "…"
    return message


# ---------------------------------------------------------------------------
# Requests: tensors in, model input out.


def decode_tensor(np, desc, body):
    shape = tuple(desc["shape"])
    dtype = desc["dtype"]
    if dtype == "str":
        values = desc["values"]
        array = np.empty(len(values), dtype=object)
        array[:] = values
        return array.reshape(shape)
    # float16 travels as float32: the server stores FP16 that way.
    wire = np.dtype("float32" if dtype == "float16" else dtype).newbyteorder("<")
    count = desc["nbytes"] // wire.itemsize
    array = np.frombuffer(body, dtype=wire, count=count, offset=desc["offset"]).reshape(shape)
    if dtype == "float16" or not wire.isnative:
        array = array.astype(np.dtype(dtype))
    return array


def model_input(np, pd, header, body):
    layout = header["layout"]
    named = [(desc["name"], decode_tensor(np, desc, body)) for desc in header["inputs"]]
    if layout == "dataframe":
        return pd.DataFrame(dict(named))
    if layout == "tensor_dict":
        return dict(named)
    if layout == "array":
        if len(named) != 1:
            raise ProtocolError(f"layout 'array' with {len(named)} inputs")
        return named[0][1]
    raise ProtocolError(f"unknown layout {layout!r}")


# ---------------------------------------------------------------------------
# Replies: whatever predict returned, out as tensors.


def as_array(np, pd, value):
    if isinstance(value, (pd.Series, pd.Index)):
        if isinstance(value.dtype, pd.api.extensions.ExtensionDtype) and value.dtype.kind in "iufb":
            # Nullable integers/floats/booleans: missing values become NaN.
            if value.hasnans:
                return value.to_numpy(dtype="float64", na_value=np.nan)
            return value.to_numpy(dtype=value.dtype.numpy_dtype)
        return value.to_numpy()
    if isinstance(value, pd.DataFrame):
        return value.to_numpy()
    return np.asarray(value)


def object_values(np, pd, name, array):
    """Finds the one tensor type the elements of an object array share."""
    import numbers

    flat = array.ravel().tolist()

    def is_missing(v):
        return v is None or v is pd.NA or (isinstance(v, float) and v != v)

    def is_bool(v):
        return isinstance(v, (bool, np.bool_))

    if all(isinstance(v, str) for v in flat):
        return "str", flat
    if all(isinstance(v, bytes) for v in flat):
        try:
            return "str", [v.decode("utf-8") for v in flat]
        except UnicodeDecodeError as exc:
            raise UnsupportedOutput(f"output {name!r} holds bytes that are not UTF-8: {exc}")
    if all(is_bool(v) for v in flat):
        return "array", np.array(flat, dtype=np.bool_).reshape(array.shape)
    if all(isinstance(v, numbers.Integral) and not is_bool(v) for v in flat):
        try:
            return "array", np.array(flat, dtype=np.int64).reshape(array.shape)
        except OverflowError:
            raise UnsupportedOutput(f"output {name!r} holds integers beyond the int64 range")
    if all(
        is_missing(v) or (isinstance(v, numbers.Real) and not is_bool(v)) for v in flat
    ):
        floats = [float("nan") if is_missing(v) else float(v) for v in flat]
        return "array", np.array(floats, dtype=np.float64).reshape(array.shape)
    kinds = sorted({type(v).__name__ for v in flat})
    raise UnsupportedOutput(
        f"output {name!r} holds values of types {', '.join(kinds)}, which no tensor type holds"
    )


def encode_tensor(np, pd, name, value, body):
    array = as_array(np, pd, value)
    kind = array.dtype.kind
    if kind == "O":
        form, converted = object_values(np, pd, name, array)
        if form == "str":
            return {"name": name, "dtype": "str", "shape": list(array.shape), "values": converted}
        array = converted
        kind = array.dtype.kind
    if kind == "U":
        return {"name": name, "dtype": "str", "shape": list(array.shape), "values": array.ravel().tolist()}
    if kind == "S":
        form, values = object_values(np, pd, name, array.astype(object))
        return {"name": name, "dtype": "str", "shape": list(array.shape), "values": values}
    if kind == "M":
        values = np.datetime_as_string(array).ravel().tolist()
        return {"name": name, "dtype": "str", "shape": list(array.shape), "values": values}
    if kind == "m":
        values = array.astype(str).ravel().tolist()
        return {"name": name, "dtype": "str", "shape": list(array.shape), "values": values}
    if kind not in "biuf":
        raise UnsupportedOutput(f"output {name!r} has dtype {array.dtype}, which no tensor type holds")
    if kind == "f" and array.dtype.itemsize > 8:
        array = array.astype(np.float64)
    dtype = array.dtype.name
    # float16 travels as float32, like in requests.
    wire = np.dtype("float32") if dtype == "float16" else array.dtype
    if dtype == "uint64" and array.size and array.max() > np.iinfo(np.int64).max:
        raise UnsupportedOutput(f"output {name!r} holds uint64 values beyond the int64 range")
    data = np.ascontiguousarray(array, dtype=wire.newbyteorder("<"))
    raw = data.reshape(-1).view(np.uint8)
    offset = body.add(raw)
    return {
        "name": name,
        "dtype": dtype,
        "shape": list(array.shape),
        "offset": offset,
        "nbytes": int(raw.nbytes),
    }


def encode_outputs(np, pd, result, body):
    if isinstance(result, pd.DataFrame):
        columns = [(str(column), result.iloc[:, idx]) for idx, column in enumerate(result.columns)]
    elif isinstance(result, dict):
        columns = [(str(key), value) for key, value in result.items()]
    else:
        columns = [("predictions", result)]
    return [encode_tensor(np, pd, name, value, body) for name, value in columns]


def is_bad_request(exc):
    """Whether an exception from predict blames the request."""
    if isinstance(exc, (ValueError, TypeError, KeyError)):
        return True
    try:
        from mlflow.exceptions import MlflowException
    except ImportError:
        return False
    # pyfunc's schema enforcement raises this for inputs that do not fit the
    # signature; MLflow's own server answers 400 to it.
    return isinstance(exc, MlflowException) and exc.error_code == "INVALID_PARAMETER_VALUE"


# ---------------------------------------------------------------------------


def load(model_dir):
    import platform

    import mlflow
    import mlflow.pyfunc
    import numpy as np
    import pandas as pd

    model = mlflow.pyfunc.load_model(model_dir)
    metadata = model.metadata
    signature = None
    if metadata.signature is not None:
        import json

        sig = metadata.signature
        signature = {
            "inputs": json.loads(sig.inputs.to_json()) if sig.inputs else None,
            "outputs": json.loads(sig.outputs.to_json()) if sig.outputs else None,
        }
    probabilities = add_probabilities(model)
    ready = {
        "type": "ready",
        "probabilities": probabilities is not None,
        "protocol": PROTOCOL_VERSION,
        "python_version": platform.python_version(),
        "mlflow_version": mlflow.__version__,
        "flavors": list(metadata.flavors),
        "loader_module": model.loader_module,
        "signature": signature,
    }
    return np, pd, model, ready, probabilities


# Probabilities beside labels, for classifiers of the scikit-learn API served
# through pyfunc (whose predict gives labels only): the native engines answer
# `predict` and `predict_proba`, and a model served here answers the same.
_CLASSIFIER_LOADERS = ("mlflow.sklearn", "mlflow.xgboost", "mlflow.lightgbm")


def add_probabilities(model):
    """Wraps the pyfunc's predict function so that it also computes the raw
    model's `predict_proba` on the same input (after MLflow's schema
    enforcement); returns the dict the probabilities land in, or None when the
    model has no probabilities or predicts with another method."""
    import inspect

    if model.loader_module not in _CLASSIFIER_LOADERS:
        return None
    try:
        raw = model.get_raw_model()
    except Exception:  # noqa: BLE001 - no raw model, no probabilities
        return None
    predict_proba = getattr(raw, "predict_proba", None)
    original = getattr(model, "_predict_fn", None)
    if predict_proba is None or not hasattr(raw, "classes_") or original is None:
        return None
    # `pyfunc_predict_fn` chose another method (predict_proba itself, say).
    if getattr(original, "__name__", "") != "predict":
        return None
    takes_params = "params" in inspect.signature(original).parameters
    captured = {}

    def predict(data, params=None):
        labels = original(data, params=params) if takes_params else original(data)
        captured["predict_proba"] = predict_proba(data)
        return labels

    model._predict_fn = predict
    return captured


def send_error(frames_out, request_id, kind, exc, context=""):
    import traceback

    traceback.print_exc()
    write_frame(
        frames_out,
        {
            "type": "error",
            "id": request_id,
            "kind": kind,
            "error_type": exception_type_name(exc),
            "message": context + short_message(exc),
        },
    )


def serve(frames_in, frames_out, np, pd, model, probabilities=None):
    while True:
        frame = read_frame(frames_in)
        if frame is None:
            return
        header, body = frame
        if header.get("type") != "predict":
            raise ProtocolError(f"unexpected message {header.get('type')!r}")
        request_id = header["id"]
        try:
            result = model.predict(model_input(np, pd, header, body))
            if probabilities is not None and "predict_proba" in probabilities:
                result = {"predict": result, "predict_proba": probabilities.pop("predict_proba")}
        except Exception as exc:
            send_error(frames_out, request_id, "input" if is_bad_request(exc) else "model", exc)
            continue
        # Apart from predict: a ValueError here is the model's output's
        # fault, never the request's.
        try:
            out = Body()
            outputs = encode_outputs(np, pd, result, out)
        except Exception as exc:
            send_error(frames_out, request_id, "model", exc, "cannot convert the model's output: ")
            continue
        write_frame(frames_out, {"type": "result", "id": request_id, "outputs": outputs}, out.buffers)


def main():
    frames_in, frames_out = claim_protocol_channel()
    # `python worker.py` puts the script's directory first on sys.path; drop
    # it so that files there cannot shadow the model's imports.
    if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
        del sys.path[0]
    if len(sys.argv) != 2:
        print("usage: python worker.py MODEL_DIR", file=sys.stderr)
        return 2
    try:
        np, pd, model, ready, probabilities = load(sys.argv[1])
    except BaseException as exc:  # noqa: B036 -- any failure to load is reported, even SystemExit
        import traceback

        traceback.print_exc()
        write_frame(
            frames_out,
            {"type": "load_error", "error_type": exception_type_name(exc), "message": short_message(exc)},
        )
        return 1
    write_frame(frames_out, ready)
    try:
        serve(frames_in, frames_out, np, pd, model, probabilities)
    except (ProtocolError, BrokenPipeError) as exc:
        print(f"sextant worker: stopping: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
