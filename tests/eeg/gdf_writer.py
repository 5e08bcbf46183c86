"""A minimal GDF 2.10 writer for tests (MNE reads GDF but cannot write it).

Layout (GDF 2 spec, Schloegl 2006): 256-byte fixed header, 256 bytes per channel of variable
header (fields stored channel after channel), int16 data records (each record holds every
channel's samples one channel after the other), then the event table (mode 1: positions, types).
"""
import struct

import numpy as np


def write_gdf(path, data_uv, sfreq, ch_names, events=(), record_seconds=1):
    """``data_uv`` (channels, times) in microvolts; ``events`` [(sample, type code)] (0-based)."""
    data_uv = np.asarray(data_uv, dtype=np.float64)
    nchan, n_times = data_uv.shape
    spr = int(sfreq * record_seconds)  # samples per record
    n_records = -(-n_times // spr)
    padded = np.zeros((nchan, n_records * spr))
    padded[:, :n_times] = data_uv
    pmax = float(np.abs(padded).max()) or 1.0
    dig = np.round(padded / pmax * 32767).astype("<i2")

    fixed = bytearray(256)
    fixed[0:8] = b"GDF 2.10"
    fixed[8:74] = b"X X".ljust(66, b" ")
    fixed[88:152] = b"edgekd test".ljust(64, b" ")
    fixed[152:156] = bytes([0, 0, 0, 0])
    struct.pack_into("<H", fixed, 184, 1 + nchan)  # header length in 256-byte blocks
    struct.pack_into("<q", fixed, 236, n_records)
    struct.pack_into("<II", fixed, 244, record_seconds, 1)  # record duration as a fraction
    struct.pack_into("<H", fixed, 252, nchan)

    def block(fmt, values):
        return b"".join(struct.pack("<" + fmt, v) for v in values)

    var = b"".join(n.encode().ljust(16, b" ")[:16] for n in ch_names)
    var += b" " * 80 * nchan  # transducer
    var += b"uV".ljust(6, b" ") * nchan  # physical dimension (obsolete text)
    var += block("H", [4275] * nchan)  # microvolt code
    var += block("d", [-pmax] * nchan) + block("d", [pmax] * nchan)
    var += block("d", [-32767.0] * nchan) + block("d", [32767.0] * nchan)
    var += b" " * 68 * nchan  # prefiltering text (obsolete)
    var += block("f", [100.0] * nchan) + block("f", [0.5] * nchan) + block("f", [50.0] * nchan)
    var += block("i", [spr] * nchan)  # samples per record
    var += block("i", [3] * nchan)  # GDF type 3 = int16
    var += block("f", [0.0] * 3 * nchan)  # electrode xyz
    var += bytes([255]) * nchan + b"\x00" * 19 * nchan  # impedance (unknown) + reserved
    assert len(var) == 256 * nchan

    records = dig.reshape(nchan, n_records, spr).transpose(1, 0, 2).tobytes()
    events = list(events)
    table = bytes([1]) + len(events).to_bytes(3, "little") + struct.pack("<f", float(sfreq))
    table += block("I", [s + 1 for s, _ in events]) + block("H", [t for _, t in events])
    with open(path, "wb") as fh:
        fh.write(bytes(fixed) + var + records + table)
    return path
