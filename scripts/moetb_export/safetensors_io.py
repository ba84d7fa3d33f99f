"""safetensors by hand, for routing traces (format v1: ../shared/spec/trace-format.md).

Layout (Hugging Face safetensors): u64 little-endian header length N, N bytes of JSON
{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}, then
the raw little-endian tensor bytes. Like moetb's own writer, the JSON is padded with
spaces to a multiple of 8 bytes so the data section starts 8-byte aligned, and a file
is written under a temporary name and renamed into place only when complete.
Only numpy and the standard library are used; BF16 is carried as raw uint16 words.
"""
import json
import os
import struct

import numpy as np

# dtype name -> numpy dtype of the stored words (little-endian); BF16 as raw uint16.
DTYPES = {
    "I16": np.dtype("<i2"),
    "I32": np.dtype("<i4"),
    "F16": np.dtype("<f2"),
    "F32": np.dtype("<f4"),
    "BF16": np.dtype("<u2"),
}
MAX_HEADER_BYTES = 100 * 1000 * 1000  # the trace spec's cap


def float_to_bf16_words(values):
    """float32 array -> uint16 BF16 words, rounded to nearest even (NaN stays NaN)."""
    bits = np.ascontiguousarray(values, dtype="<f4").view("<u4").astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype("<u2")
    nan = np.isnan(np.asarray(values, dtype=np.float32))
    rounded[nan] = ((bits[nan] >> 16) | 0x40).astype("<u2")
    return rounded


def bf16_words_to_float(words):
    return (np.asarray(words, dtype="<u2").astype("<u4") << 16).view("<f4")


def encode(values, dtype):
    """Returns `values` as a contiguous little-endian array of the stored words for dtype."""
    if dtype == "BF16":
        return float_to_bf16_words(values)
    return np.ascontiguousarray(values, dtype=DTYPES[dtype])


def write_file(path, tensors, metadata):
    """Writes [(name, dtype, array)] with string metadata atomically (temp file + rename)."""
    header = {"__metadata__": {str(k): str(v) for k, v in metadata.items()}}
    arrays, offset = [], 0
    for name, dtype, values in tensors:
        words = encode(values, dtype)
        header[name] = {"dtype": dtype, "shape": list(words.shape), "data_offsets": [offset, offset + words.nbytes]}
        offset += words.nbytes
        arrays.append(words)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-(8 + len(text)) % 8)  # tensor data starts 8-byte aligned
    tmp = "%s.tmp-%d" % (path, os.getpid())
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(text)))
            f.write(text)
            for words in arrays:
                f.write(memoryview(words).cast("B"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def read_file(path):
    """Returns (tensors, metadata): tensors maps name -> numpy array (BF16 widened to
    float32). For tests and quick checks; moetb's C++ reader is the checked one."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError("%s: too short for a safetensors header" % path)
    (n,) = struct.unpack("<Q", data[:8])
    if n > MAX_HEADER_BYTES or n > len(data) - 8:
        raise ValueError("%s: header length %d is out of range" % (path, n))
    header = json.loads(data[8:8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__", {})
    tensors, base = {}, 8 + n
    for name, info in header.items():
        begin, end = info["data_offsets"]
        words = np.frombuffer(data[base + begin:base + end], dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
        tensors[name] = bf16_words_to_float(words) if info["dtype"] == "BF16" else words
    return tensors, metadata
