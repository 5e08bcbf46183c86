"""Static arena planning for the native C target: offsets for every activation buffer, kernel
scratch included, where buffers whose lifetimes meet never share a byte, except where a kernel's
order of reads and writes makes sharing safe.

A kernel that streams (reads its input front to back, writes its output front to back) may write
its output over the part of its input it will not read again, when that input dies at this step.
For each such pair the lowering states the allowed range of ``d = offset(output) - offset(input)``
from the kernel's exact access order (the ``*_overlap`` functions below): e.g. an elementwise ADD
allows ``d <= 0`` (in place), a 3x3 depthwise that copies a channel to its plane before writing
that channel allows ``d = 0``, a convolution over groups of pixels allows ``d`` up to the smallest
margin between the bytes written so far and the first input byte a later pixel still reads.

The planner is greedy (TFLM's planner places largest first at the lowest offset): each buffer
goes to the lowest offset where it is disjoint from every placed buffer alive at the same time or
inside an allowed overlap with it; it tries a few placement orders and keeps the smallest arena.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

INF = None          # an open end of an allowed interval


@dataclass
class ArenaPlan:
    size: int
    offsets: dict        # storage root tensor index -> byte offset
    lifetimes: dict      # root -> (first step, last step)
    sizes: dict          # root -> bytes (aligned)


def _inside(d, intervals) -> bool:
    return any((lo is None or d >= lo) and (hi is None or d <= hi) for lo, hi in intervals)


def _negate(intervals):
    return [(None if hi is None else -hi, None if lo is None else -lo) for lo, hi in intervals]


def plan_arena(buffers: dict, align: int = 4, overlaps: dict | None = None) -> ArenaPlan:
    """Offsets for buffers ``{id: (size, first step, last step)}`` (inclusive lifetimes).

    ``overlaps``: ``{(out_id, in_id): [(lo, hi), ...]}``, the allowed ``offset(out) - offset(in)``
    when the two may share bytes (None: unbounded). Any other two buffers alive at a common step
    are disjoint; dead ones are reused.
    """
    sizes = {b: -(-int(s) // align) * align for b, (s, _, _) in buffers.items()}
    life = {b: (f, l) for b, (_, f, l) in buffers.items()}
    allowed: dict = {}
    for (o, i), iv in (overlaps or {}).items():
        if o in buffers and i in buffers:
            allowed[(o, i)] = list(iv)
            allowed[(i, o)] = _negate(iv)
    ids = list(buffers)
    together = {b: [p for p in ids if p != b and not (life[p][1] < life[b][0] or life[b][1] < life[p][0])]
                for b in ids}

    def place(order):
        offsets: dict = {}
        for b in order:
            size = sizes[b]
            near = [p for p in together[b] if p in offsets]
            cands = {0}
            for p in near:
                cands.add(offsets[p] + sizes[p])
                for lo, hi in allowed.get((b, p), ()):
                    if hi is not None:
                        cands.add((offsets[p] + hi) // align * align)
                    if lo is not None:
                        cands.add(-(-(offsets[p] + lo) // align) * align)
            for off in sorted(c for c in cands if c >= 0):
                if all(off + size <= offsets[p] or offsets[p] + sizes[p] <= off
                       or _inside(off - offsets[p], allowed.get((b, p), ())) for p in near):
                    offsets[b] = off
                    break
        return offsets

    # largest first (TFLM's order) with equal sizes earliest or latest first: latest first puts a
    # kernel's output before its input, so the input can be placed over the output's tail
    orders = [sorted(ids, key=lambda b: (-sizes[b], life[b][0], str(b))),
              sorted(ids, key=lambda b: (-sizes[b], -life[b][0], str(b))),
              sorted(ids, key=lambda b: (life[b][0], -sizes[b], str(b))),
              sorted(ids, key=lambda b: (-life[b][0], -sizes[b], str(b))),
              sorted(ids, key=lambda b: (-(life[b][1] - life[b][0]), -sizes[b], str(b)))]
    best = None
    for order in orders:
        offsets = place(order)
        total = max((offsets[b] + sizes[b] for b in ids), default=0)
        if best is None or total < best[0]:
            best = (total, offsets)
    total, offsets = best
    return ArenaPlan(total, offsets, life, sizes)


# ---- allowed overlaps of the runtime's kernels ---------------------------------------------------
# d = offset(output) - offset(input). A write at output byte w is safe while every input byte the
# kernel still reads lies at or after w + 1 - d, so d <= min over write times of
# (first input byte still needed) - (output bytes written so far).

def _window_starts(in_h, in_w, in_c, out_h, out_w, stride_h, stride_w, pad_h, pad_w) -> np.ndarray:
    """First input byte of each output pixel's window (a lower bound: rows/columns clipped at 0),
    and the minimum over every later pixel (suffix minimum); one extra entry: nothing needed."""
    oy, ox = np.divmod(np.arange(out_h * out_w), out_w)
    iy = np.clip(oy * stride_h - pad_h, 0, None)
    ix = np.clip(ox * stride_w - pad_w, 0, None)
    start = np.minimum((iy * in_w + ix) * in_c, in_h * in_w * in_c)
    suffix = np.minimum.accumulate(start[::-1])[::-1]
    return np.append(suffix, in_h * in_w * in_c)


def gathered_groups_overlap(in_shape, out_shape, stride, pad, group: int) -> list:
    """A kernel that gathers ``group`` output pixels' windows into scratch, then writes those
    pixels' outputs (ekd_conv_gemm_s8 and ekd_conv2d_s8 with 2)."""
    (in_h, in_w, in_c), (out_h, out_w, out_c) = in_shape, out_shape
    needed = _window_starts(in_h, in_w, in_c, out_h, out_w, *stride, *pad)
    npix = out_h * out_w
    ends = np.arange(group, npix, group)          # pixels written when a later group still reads
    if not len(ends):
        return [(INF, INF)]
    return [(INF, int(np.min(needed[ends] - ends * out_c)))]


def window_overlap(in_shape, out_shape, stride, pad) -> list:
    """A kernel that writes pixel by pixel, channel by channel, reading each window as it goes
    (pooling): output byte p*C + c is written while channel c+1.. of pixel p's window is read."""
    (in_h, in_w, in_c), (out_h, out_w, out_c) = in_shape, out_shape
    needed = _window_starts(in_h, in_w, in_c, out_h, out_w, *stride, *pad)[:-1]
    return [(INF, int(np.min(needed - np.arange(out_h * out_w) * out_c)))]


def channel_planes_overlap(in_pixels: int, out_pixels: int, channels: int) -> list:
    """ekd_dwconv3x3_s8: channel c is copied whole into the plane before output channel c is
    written, and output (p, c) only lands on input bytes of channel c when d is a multiple of C."""
    return [(0, 0), ((in_pixels - out_pixels) * channels,) * 2, (INF, -out_pixels * channels)]


def rows_overlap(rows: int, in_n: int, out_n: int) -> list:
    """Fully connected: each input row is widened into scratch before its outputs are written."""
    if rows <= 1:
        return [(INF, INF)]
    r = np.arange(1, rows)
    return [(INF, int(np.min(r * in_n - r * out_n)))]


ELEMENTWISE_OVERLAP = [(INF, 0)]     # out[i] written after in[i] is read: in place or below
