"""The Open Inference Protocol v2 inference request and response, for one model.

JSON bodies as KServe and Triton define them, and Triton's binary tensor data extension:
with the request header `Inference-Header-Content-Length: N`, the first N bytes of the body
are the JSON and the raw little-endian tensors follow, one per input that declares
`parameters.binary_data_size`, in input order (BYTES elements each prefixed by a 4-byte
little-endian length). Outputs asked for with `parameters.binary_data: true` (or all, with
the request's `parameters.binary_data_output: true`) return the same way.

Every way a request can be wrong raises ProtocolError with a message naming what was
expected; the server answers 400 with it. Decoding runs for every request on the event
loop, so the common case (a tensor whose only free dimension leads) takes few steps.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Hashable, Sequence
from typing import Any, Generic, NamedTuple, TypeVar

import numpy as np
import orjson

from gyre_runtime.model_artifact import TensorSpec
from gyre_runtime.serving.model import DTYPES, Array, ServedModel

OriginT = TypeVar("OriginT")

# The kinds of numpy array that JSON data may parse to, for each datatype: no floats for
# integers (they would be truncated), booleans only for BOOL.
_JSON_KINDS: dict[str, str] = {
    "BOOL": "b",
    **dict.fromkeys(("UINT8", "UINT16", "UINT32", "UINT64"), "iu"),
    **dict.fromkeys(("INT8", "INT16", "INT32", "INT64"), "iu"),
    **dict.fromkeys(("FP16", "FP32", "FP64"), "iuf"),
}
_KIND_NAMES = {"b": "booleans", "i": "integers", "u": "integers", "f": "floating-point numbers"}
_LENGTH = struct.Struct("<I")  # the length before each BYTES element
_NUMPY = orjson.OPT_SERIALIZE_NUMPY


class ProtocolError(Exception):
    """A request the protocol or the model's signature does not allow (HTTP 400)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class OutputChoice(NamedTuple):
    """An output to return: its position among the model's outputs; whether as raw bytes."""

    position: int
    binary: bool


class InferRequest(Generic[OriginT]):
    """A decoded, checked inference request.

    `inputs` hold one array per model input. `rows` is the leading dimension they share and
    `batch_key` the shapes behind it: requests with equal keys can be stacked into one run;
    None when the request cannot join a batch. `origin` is what the server attached (the
    HTTP request).
    """

    __slots__ = ("batch_key", "id", "inputs", "origin", "outputs", "rows")

    def __init__(
        self,
        request_id: str | None,
        inputs: dict[str, Array],
        rows: int,
        batch_key: Hashable | None,
        outputs: tuple[OutputChoice, ...],
        origin: OriginT,
    ) -> None:
        self.id = request_id
        self.inputs = inputs
        self.rows = rows
        self.batch_key = batch_key
        self.outputs = outputs
        self.origin = origin


class Codec:
    """Decodes inference requests for one model and encodes its responses."""

    def __init__(self, model: ServedModel) -> None:
        self._decoders = {tensor.name: _InputDecoder(tensor) for tensor in model.inputs}
        self._input_names = [tensor.name for tensor in model.inputs]
        self._single = next(iter(self._decoders.values())) if len(self._decoders) == 1 else None
        self._outputs = {tensor.name: position for position, tensor in enumerate(model.outputs)}
        # The JSON of each response, written around the run's serialized outputs.
        identity = orjson.dumps({"model_name": model.name, "model_version": model.version})
        self._prefix = identity[:-1] + b',"outputs":['
        self._output_heads = [
            b'{"name":%s,"datatype":"%s",' % (orjson.dumps(tensor.name), tensor.datatype.encode())
            for tensor in model.outputs
        ]
        count = len(model.outputs)
        self._all_json = tuple(OutputChoice(position, False) for position in range(count))
        self._all_binary = tuple(OutputChoice(position, True) for position in range(count))
        self._batchable = model.batchable

    def decode(
        self, body: bytes, header_length: bytes | None, origin: OriginT
    ) -> InferRequest[OriginT]:
        """Parse and check a request body (JSON, or JSON then binary tensors)."""
        binary: _Binary | None = None
        if header_length is None:
            document = _json(body)
        else:
            length = _header_length(header_length, len(body))
            document = _json(memoryview(body)[:length])
            binary = _Binary(body, length)
        if type(document) is not dict:
            raise ProtocolError("the request must be a JSON object")
        entries = document.get("inputs")
        if type(entries) is not list or not entries:
            raise ProtocolError("'inputs' must be a non-empty list of tensors")
        single = self._single
        if single is not None and len(entries) == 1:
            # One input, the usual case: no bookkeeping of which inputs came.
            entry = entries[0]
            if type(entry) is not dict or entry.get("name") != single.name:
                inputs = self._decode_inputs(entries, binary)
            else:
                inputs = {single.name: single.decode(entry, binary)}
        else:
            inputs = self._decode_inputs(entries, binary)
        if binary is not None:
            binary.check_consumed()
        request_id = document.get("id")
        if request_id is not None and type(request_id) is not str:
            raise ProtocolError("'id' must be a string")
        if "outputs" in document or "parameters" in document:
            outputs = self._choose_outputs(document)
        else:
            outputs = self._all_json
        if single is not None:
            shape = inputs[single.name].shape
            rows = shape[0] if shape else 1
            key: Hashable | None = shape[1:] if self._batchable else None
            return InferRequest(request_id, inputs, rows, key, outputs, origin)
        rows, key = self._batching(inputs)
        return InferRequest(request_id, inputs, rows, key, outputs, origin)

    def _decode_inputs(self, entries: list[Any], binary: _Binary | None) -> dict[str, Array]:
        decoders = self._decoders
        inputs: dict[str, Array] = {}
        for entry in entries:
            if type(entry) is not dict:
                raise ProtocolError("each input must be a JSON object")
            name = entry.get("name")
            decoder = decoders.get(name) if type(name) is str else None
            if decoder is None:
                raise ProtocolError(
                    f"unknown input {name!r}: the model takes {_names(self._input_names)}"
                )
            if decoder.name in inputs:
                raise ProtocolError(f"input {name!r} is given twice")
            inputs[decoder.name] = decoder.decode(entry, binary)
        if len(inputs) != len(decoders):
            missing = [name for name in self._input_names if name not in inputs]
            raise ProtocolError(f"missing input(s) {_names(missing)}")
        return inputs

    def encode(
        self, request: InferRequest[Any], run: RunOutputs, start: int, end: int
    ) -> tuple[bytes, int | None]:
        """The response to a request whose rows are `start:end` of a run's outputs, and the
        length of its JSON part when raw tensors follow it (None for a JSON-only body)."""
        parts: list[bytes] = []
        raw: list[bytes] | None = None
        heads = self._output_heads
        for position, binary in request.outputs:
            if binary:
                data = run.raw(position, start, end)
                if raw is None:
                    raw = []
                raw.append(data)
                parts.append(
                    b'%s"shape":%s,"parameters":{"binary_data_size":%d}}'
                    % (heads[position], run.shape(position, start, end), len(data))
                )
            else:
                parts.append(b"%s%s}" % (heads[position], run.json(position, start, end)))
        if request.id is None:
            text = b"%s%s]}" % (self._prefix, b",".join(parts))
        else:
            text = b'{"id":%s,%s%s]}' % (
                orjson.dumps(request.id),
                self._prefix[1:],
                b",".join(parts),
            )
        if raw is None:
            return text, None
        return b"".join((text, *raw)), len(text)

    def _choose_outputs(self, document: dict[str, Any]) -> tuple[OutputChoice, ...]:
        parameters = document.get("parameters")
        if parameters is not None and type(parameters) is not dict:
            raise ProtocolError("'parameters' must be a JSON object")
        binary_default = _flag(parameters, "binary_data_output")
        requested = document.get("outputs")
        if requested is not None and type(requested) is not list:
            raise ProtocolError("'outputs' must be a list")
        if not requested:
            return self._all_binary if binary_default else self._all_json
        chosen: list[OutputChoice] = []
        for entry in requested:
            if type(entry) is not dict:
                raise ProtocolError("each requested output must be a JSON object")
            name = entry.get("name")
            position = self._outputs.get(name) if type(name) is str else None
            if position is None:
                raise ProtocolError(
                    f"unknown output {name!r}: the model has {_names(list(self._outputs))}"
                )
            binary = binary_default
            output_parameters = entry.get("parameters")
            if output_parameters is not None:
                if type(output_parameters) is not dict:
                    raise ProtocolError(f"'parameters' of output {name!r} must be a JSON object")
                if "classification" in output_parameters:
                    raise ProtocolError("the classification extension is not supported")
                flag = output_parameters.get("binary_data")
                if flag is not None:
                    if type(flag) is not bool:
                        raise ProtocolError("parameter 'binary_data' must be true or false")
                    binary = flag
            chosen.append(self._all_binary[position] if binary else self._all_json[position])
        return tuple(chosen)

    def _batching(self, inputs: dict[str, Array]) -> tuple[int, Hashable | None]:
        arrays = [inputs[name] for name in self._input_names]
        first = arrays[0]
        rows = first.shape[0] if first.ndim else 1
        if not self._batchable or any(array.shape[0] != rows for array in arrays):
            return rows, None
        return rows, tuple(array.shape[1:] for array in arrays)


class RunOutputs:
    """The outputs of one model run, from which each of its requests gets its rows.

    A run of stacked requests is serialized once per output, as one JSON list per row,
    and each request's answer joins its rows' texts: cheaper than serializing a slice per
    request. A run of one request (`stacked` false) answers with the arrays as they are.
    """

    __slots__ = ("_bytes", "_rows", "_tails", "arrays", "stacked")

    def __init__(self, arrays: Sequence[Array], stacked: bool) -> None:
        self.arrays = arrays
        self.stacked = stacked
        count = len(arrays)
        self._rows: list[list[bytes] | None] = [None] * count
        self._tails: list[bytes | None] = [None] * count
        self._bytes: list[bytes | None] = [None] * count

    def shape(self, position: int, start: int, end: int) -> bytes:
        """The JSON shape of an output's rows start:end."""
        array = self.arrays[position]
        if not self.stacked:
            return orjson.dumps(array.shape)
        tail = self._tails[position]
        if tail is None:
            tail = self._tails[position] = _shape_tail(array)
        return b"[%d%s]" % (end - start, tail)

    def json(self, position: int, start: int, end: int) -> bytes:
        """`"shape":[...],"data":[...]` of an output's rows start:end (data flat)."""
        array = self.arrays[position]
        if not self.stacked:
            if array.dtype.kind == "O":
                data = orjson.dumps(_strings(array))
            else:
                data = orjson.dumps(array.reshape(-1), option=_NUMPY)
            return b'"shape":%s,"data":%s' % (orjson.dumps(array.shape), data)
        rows = self._rows[position]
        tail = self._tails[position]
        if rows is None or tail is None:
            rows = self._rows[position] = _row_texts(array)
            tail = self._tails[position] = _shape_tail(array)
        if end - start == 1 and rows:
            return b'"shape":[1%s],"data":[%s]' % (tail, rows[start])
        return b'"shape":[%d%s],"data":[%s]' % (end - start, tail, b",".join(rows[start:end]))

    def raw(self, position: int, start: int, end: int) -> bytes:
        """The little-endian bytes of an output's rows start:end (length-prefixed BYTES)."""
        array = self.arrays[position]
        if array.dtype.kind == "O":
            return _to_bytes(array[start:end] if self.stacked else array)
        data = self._bytes[position]
        if data is None:
            data = self._bytes[position] = _to_bytes(array)
        if not self.stacked:
            return data
        row = len(data) // len(array)
        return data[start * row : end * row]


class _InputDecoder:
    """Decodes one model input from its request entry, checked against its signature."""

    __slots__ = ("datatype", "dtype", "kinds", "name", "shape", "tail", "tail_count")

    def __init__(self, spec: TensorSpec) -> None:
        self.name = spec.name
        self.datatype = spec.datatype
        self.dtype = DTYPES[spec.datatype]
        self.kinds = _JSON_KINDS.get(spec.datatype)
        self.shape = spec.shape
        # When every dimension after the first is fixed, one comparison checks a shape.
        fixed_tail = len(spec.shape) >= 1 and all(dim >= 0 for dim in spec.shape[1:])
        self.tail = list(spec.shape[1:]) if fixed_tail else None
        self.tail_count = math.prod(spec.shape[1:]) if fixed_tail else 0

    def decode(self, entry: dict[str, Any], binary: _Binary | None) -> Array:
        """The input's array from its entry in the request."""
        if entry.get("datatype") != self.datatype:
            given = entry.get("datatype")
            raise ProtocolError(
                f"input {self.name!r} expects datatype {self.datatype}, "
                f"got {given if type(given) is str else repr(given)}"
            )
        shape = entry.get("shape")
        if (
            type(shape) is list
            and self.tail is not None
            and shape[1:] == self.tail
            and len(shape) == len(self.shape)
            and type(shape[0]) is int
            and shape[0] > 0
            and (self.shape[0] < 0 or shape[0] == self.shape[0])
        ):
            # The request's own fixed dimensions may be floats equal to ours: use ours.
            rows = shape[0]
            count = rows * self.tail_count
            dims: tuple[int, ...] = (rows, *self.tail)
        else:
            dims = self._dims(shape)
            count = math.prod(dims)
        if count <= 0:
            raise ProtocolError(f"input {self.name!r} is empty (shape {_shape_text(dims)})")
        parameters = entry.get("parameters")
        data = entry.get("data")
        if parameters is None and self.kinds is not None and type(data) is list:
            return self._from_json(data, dims, count)
        return self._decode_other(entry, parameters, binary, dims, count)

    def _dims(self, shape: object) -> tuple[int, ...]:
        expected = self.shape
        if (
            type(shape) is not list
            or len(shape) != len(expected)
            or not all(type(dim) is int and dim >= 0 for dim in shape)
        ):
            raise ProtocolError(
                f"input {self.name!r} expects a shape like {_shape_text(expected)} "
                f"(-1: any size), got {orjson.dumps(shape).decode()[:200]}"
            )
        for dim, fixed in zip(shape, expected, strict=True):
            if fixed >= 0 and dim != fixed:
                raise ProtocolError(
                    f"input {self.name!r} expects shape {_shape_text(expected)} (-1: any size), "
                    f"got {_shape_text(shape)}"
                )
        return tuple(shape)

    def _from_json(self, data: list[Any], dims: tuple[int, ...], count: int) -> Array:
        try:
            array = np.array(data)
        except (ValueError, TypeError, OverflowError, RecursionError):
            raise ProtocolError(
                f"'data' of input {self.name!r} must be a flat list of {count} numbers or "
                f"nested lists of shape {_shape_text(dims)}"
            ) from None
        kinds = self.kinds
        assert kinds is not None
        if array.dtype.kind not in kinds:
            got = _KIND_NAMES.get(array.dtype.kind, "values that are not numbers")
            raise ProtocolError(f"input {self.name!r} is {self.datatype}: its data holds {got}")
        if array.size != count:
            raise ProtocolError(
                f"input {self.name!r} has {array.size} values, shape {_shape_text(dims)} "
                f"needs {count}"
            )
        dtype = self.dtype
        if array.dtype != dtype:
            if dtype.kind in "iu" and not np.can_cast(array.dtype, dtype):
                limits = np.iinfo(dtype)
                if array.min() < limits.min or array.max() > limits.max:
                    raise ProtocolError(
                        f"input {self.name!r} is {self.datatype}: its data holds values "
                        f"outside [{limits.min}, {limits.max}]"
                    )
            array = array.astype(dtype)
        return array.reshape(dims)

    def _decode_other(
        self,
        entry: dict[str, Any],
        parameters: object,
        binary: _Binary | None,
        dims: tuple[int, ...],
        count: int,
    ) -> Array:
        """Binary data, BYTES, or a malformed entry."""
        name = self.name
        if parameters is not None and type(parameters) is not dict:
            raise ProtocolError(f"'parameters' of input {name!r} must be a JSON object")
        size = parameters.get("binary_data_size") if parameters else None
        if size is None:
            data = entry.get("data")
            if type(data) is not list:
                raise ProtocolError(f"input {name!r} needs 'data' (a list) or binary_data_size")
            if self.kinds is None:
                return _strings_from_json(name, data, dims, count)
            return self._from_json(data, dims, count)
        if binary is None:
            raise ProtocolError(
                f"input {name!r} has binary_data_size but the request has no "
                "Inference-Header-Content-Length header"
            )
        if type(size) is not int or size < 0:
            raise ProtocolError(
                f"binary_data_size of input {name!r} must be a non-negative integer"
            )
        if "data" in entry:
            raise ProtocolError(f"input {name!r} has both 'data' and binary_data_size")
        start = binary.take(name, size)
        if self.kinds is None:
            return _strings_from_bytes(name, binary.body[start : start + size], count).reshape(dims)
        itemsize = self.dtype.itemsize
        if size != count * itemsize:
            raise ProtocolError(
                f"input {name!r} of shape {_shape_text(dims)} needs {count * itemsize} bytes "
                f"of {self.datatype}, binary_data_size is {size}"
            )
        array = np.frombuffer(binary.body, dtype=self.dtype, count=count, offset=start)
        if not array.flags.aligned:
            # Where a tensor starts depends on the JSON's length; kernels want alignment.
            array = array.copy()
        return array.reshape(dims)


class _Binary:
    """The raw tensor bytes after the JSON part of a binary request, claimed in order."""

    __slots__ = ("body", "offset")

    def __init__(self, body: bytes, offset: int) -> None:
        self.body = body
        self.offset = offset

    def take(self, name: str, size: int) -> int:
        """Claim the next `size` bytes for an input; return where they start."""
        start = self.offset
        if start + size > len(self.body):
            raise ProtocolError(
                f"input {name!r} declares {size} bytes of binary data, but only "
                f"{len(self.body) - start} remain in the body"
            )
        self.offset = start + size
        return start

    def check_consumed(self) -> None:
        """Refuse bytes that no input claimed."""
        extra = len(self.body) - self.offset
        if extra:
            raise ProtocolError(f"{extra} bytes of binary data follow the inputs unclaimed")


def _json(data: bytes | memoryview) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise ProtocolError(f"the request is not valid JSON: {error}") from None


def _header_length(value: bytes, body_length: int) -> int:
    text = value.strip()
    if not text.isdigit():
        raise ProtocolError(
            "Inference-Header-Content-Length must be a non-negative integer, "
            f"not {value.decode('latin-1')!r}"
        )
    length = int(text)
    if length > body_length:
        raise ProtocolError(
            f"Inference-Header-Content-Length is {length}, but the body has {body_length} bytes"
        )
    return length


def _flag(parameters: dict[str, Any] | None, key: str) -> bool:
    if not parameters:
        return False
    value = parameters.get(key, False)
    if type(value) is not bool:
        raise ProtocolError(f"parameter {key!r} must be true or false")
    return value


def _names(names: Sequence[str]) -> str:
    return ", ".join(repr(name) for name in names)


def _shape_text(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(dim) for dim in shape) + "]"


def _strings_from_json(name: str, data: list[Any], dims: tuple[int, ...], count: int) -> Array:
    if not all(type(value) is str for value in data):
        raise ProtocolError(f"'data' of BYTES input {name!r} must be a flat list of strings")
    if len(data) != count:
        raise ProtocolError(
            f"input {name!r} has {len(data)} values, shape {_shape_text(dims)} needs {count}"
        )
    array = np.empty(count, dtype=object)
    array[:] = data
    return array.reshape(dims)


def _strings_from_bytes(name: str, data: bytes, count: int) -> Array:
    values = np.empty(count, dtype=object)
    offset = 0
    for i in range(count):
        if offset + 4 > len(data):
            raise ProtocolError(f"BYTES input {name!r} ends before its element {i}")
        (length,) = _LENGTH.unpack_from(data, offset)
        offset += 4
        if offset + length > len(data):
            raise ProtocolError(f"element {i} of BYTES input {name!r} runs past its data")
        try:
            values[i] = data[offset : offset + length].decode()
        except UnicodeDecodeError:
            raise ProtocolError(f"element {i} of BYTES input {name!r} is not UTF-8") from None
        offset += length
    if offset != len(data):
        raise ProtocolError(
            f"BYTES input {name!r} has {len(data) - offset} bytes past its elements"
        )
    return values


def _shape_tail(array: Array) -> bytes:
    """The dimensions after the first, as they follow it in a JSON shape."""
    return b"".join(b",%d" % dim for dim in array.shape[1:])


def _row_texts(array: Array) -> list[bytes]:
    """Each row of an array as the items of a flat JSON list, without the brackets (none
    at all for rows without items, so that joining them adds no commas)."""
    if array.size == 0:
        return []
    rows = array.reshape(len(array), -1)
    if array.dtype.kind == "O":
        return [orjson.dumps([_text(value) for value in row])[1:-1] for row in rows.tolist()]
    # Numbers, booleans and null hold no brackets: the rows of [[...],[...]] split apart.
    return orjson.dumps(rows, option=_NUMPY)[2:-2].split(b"],[")


def _strings(array: Array) -> list[str]:
    return [_text(value) for value in array.reshape(-1).tolist()]


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value)


def _to_bytes(array: Array) -> bytes:
    if array.dtype.kind == "O":
        encoded = [value.encode() for value in _strings(array)]
        return b"".join(_LENGTH.pack(len(value)) + value for value in encoded)
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
