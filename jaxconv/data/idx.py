"""The IDX file format of MNIST and Fashion-MNIST, read with numpy.

An IDX file is a 4-byte magic number, one big-endian uint32 size per dimension, then the values
in C order. The magic number is two zero bytes, a type code and the number of dimensions:
0x00000803 is a (N, rows, cols) uint8 image file, 0x00000801 a (N,) uint8 label file
(http://yann.lecun.com/exdb/mnist/). Files may be gzip'd, as they are distributed.
"""

import gzip
import pathlib
import zlib

import numpy as np

from jaxconv.errors import DataError

# type code -> big-endian numpy dtype of the values.
DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
GZIP_MAGIC = b"\x1f\x8b"


def parse(raw: bytes, name: str = "IDX data") -> np.ndarray:
    """The array stored in the IDX bytes `raw`, in native byte order.

    Raises ValueError naming `name` when the magic number is wrong or the size does not match
    the header, which is what a truncated or corrupt download looks like.
    """
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in DTYPES:
        raise DataError(
            f"{name} is not an IDX file: its magic number is {raw[:4].hex() or 'missing'}, "
            "expected 0000 followed by a type code (08 for uint8) and the number of dimensions."
        )
    dtype, ndim = DTYPES[raw[2]], raw[3]
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise DataError(f"{name} is truncated inside its header.")
    shape = tuple(int.from_bytes(raw[4 + 4 * d : 8 + 4 * d], "big") for d in range(ndim))
    expected = header_size + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(
            f"{name} holds {len(raw):,} bytes but its header {shape} of {dtype.name} says "
            f"{expected:,}: the file is truncated or corrupt."
        )
    values = np.frombuffer(raw, dtype, offset=header_size).reshape(shape)
    return values.astype(dtype.newbyteorder("="), copy=False)


def read(path: str | pathlib.Path) -> np.ndarray:
    """The array in the IDX file at `path`, gzip'd or not (told apart by the first bytes)."""
    path = pathlib.Path(path)
    raw = path.read_bytes()
    if raw[:2] == GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as error:
            raise DataError(f"{path} is a corrupt gzip file ({error}).") from error
    return parse(raw, name=str(path))


def write(path: str | pathlib.Path, values: np.ndarray) -> None:
    """Writes `values` as a gzip'd IDX file (for tests and for exporting data)."""
    codes = {dtype.newbyteorder("="): code for code, dtype in DTYPES.items()}
    native = np.dtype(values.dtype).newbyteorder("=")
    if native not in codes:
        raise DataError(f"IDX cannot store {values.dtype}; use one of {sorted(map(str, codes))}.")
    header = bytes([0, 0, codes[native], values.ndim])
    header += b"".join(size.to_bytes(4, "big") for size in values.shape)
    body = np.ascontiguousarray(values, DTYPES[codes[native]]).tobytes()
    pathlib.Path(path).write_bytes(gzip.compress(header + body, compresslevel=1))
