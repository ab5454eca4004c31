"""The batch memory pool (csrc/hostpool.h): freed large batches are reused, bounded,
and a reused block never leaks old pixels into a new batch."""

from __future__ import annotations

import gc
import io

import numpy as np
import pytest
from PIL import Image

import spdl.io
from spdl.io import _buffer
from _util import np_batch, synth_rgb

MiB = 1 << 20


def _jpegs(n, seed=0, w=320, h=240):
    out = []
    for i in range(n):
        b = io.BytesIO()
        Image.fromarray(synth_rgb(w + 7 * i, h, seed=seed + i)).save(b, "JPEG", quality=90)
        out.append(b.getvalue())
    return out


def _ptr(buf):
    return buf.__array_interface__["data"][0]


@pytest.fixture(autouse=True)
def _empty_pool():
    _buffer._pool_trim()
    yield
    _buffer._pool_trim()


def test_same_size_batch_reuses_freed_memory():
    srcs = _jpegs(8)
    buf = spdl.io.load_image_batch(srcs, width=224, height=224)  # 1.2 MB: pooled
    first = _ptr(buf)
    del buf
    gc.collect()
    assert _buffer._pool_info()[0] == 1
    buf = spdl.io.load_image_batch(srcs, width=224, height=224)
    assert _ptr(buf) == first
    assert _buffer._pool_info() == (0, 0)


def test_reused_memory_holds_only_the_new_batch():
    a, b = _jpegs(8, seed=0), _jpegs(8, seed=100)
    fresh = np_batch(spdl.io.load_image_batch(b, width=224, height=200)).copy()
    _buffer._pool_trim()
    del_me = spdl.io.load_image_batch(a, width=224, height=200)
    first = _ptr(del_me)
    del del_me
    gc.collect()
    reused = spdl.io.load_image_batch(b, width=224, height=200)
    assert _ptr(reused) == first
    np.testing.assert_array_equal(np_batch(reused), fresh)


def test_reused_memory_with_failed_inputs():
    good = _jpegs(10, seed=5)
    srcs = good[:3] + [b"not an image"] + good[3:]
    ref = np_batch(spdl.io.load_image_batch(good, width=200, height=224)).copy()
    gc.collect()
    junk = spdl.io.load_image_batch(_jpegs(11, seed=50), width=200, height=224)
    del junk
    gc.collect()
    buf = spdl.io.load_image_batch(srcs, width=200, height=224, strict=False)
    assert buf.indices == (0, 1, 2, 4, 5, 6, 7, 8, 9, 10)
    np.testing.assert_array_equal(np_batch(buf), ref)


def test_a_live_view_keeps_its_memory_out_of_the_pool():
    srcs = _jpegs(8)
    arr = spdl.io.to_numpy(spdl.io.load_image_batch(srcs, width=224, height=224))
    snapshot = arr.copy()
    gc.collect()
    assert _buffer._pool_info()[0] == 0  # the CPUBuffer lives on inside the view
    other = spdl.io.load_image_batch(_jpegs(8, seed=77), width=224, height=224)
    assert _ptr(other) != arr.__array_interface__["data"][0]
    np.testing.assert_array_equal(arr, snapshot)


def test_pool_is_bounded():
    srcs = _jpegs(2)
    bufs = [spdl.io.load_image_batch(srcs * 4 * (k + 1), width=256, height=256) for k in range(5)]
    del bufs
    gc.collect()
    blocks, nbytes = _buffer._pool_info()
    assert blocks <= 2 and nbytes <= 512 * MiB
    assert _buffer._pool_trim() == nbytes
    assert _buffer._pool_info() == (0, 0)


def test_a_block_much_larger_than_asked_is_not_handed_out():
    big = spdl.io.load_image_batch(_jpegs(2) * 20, width=224, height=224)   # 6 MB
    big_ptr = _ptr(big)
    del big
    gc.collect()
    small = spdl.io.load_image_batch(_jpegs(2) * 4, width=224, height=224)  # 1.2 MB
    assert _ptr(small) != big_ptr
    assert _buffer._pool_info()[0] == 1


def test_small_and_empty_batches():
    buf = spdl.io.load_image_batch(_jpegs(1), width=8, height=8)
    assert np_batch(buf).shape == (1, 8, 8, 3)
    empty = spdl.io.load_image_batch([b"x"], width=8, height=8, strict=False)
    assert np_batch(empty).shape == (0, 8, 8, 3)
    del buf, empty
    gc.collect()
    assert _buffer._pool_info() == (0, 0)  # small blocks go back to the C heap


def test_fork_while_another_thread_holds_the_pool_lock():
    """Data loaders fork their workers: a fork while another thread is inside the pool
    must leave the child a usable pool (the fork waits for the lock, and both sides
    release it), not a copy of a lock nobody will ever release."""
    import os
    import threading
    import time

    srcs = _jpegs(8)
    holder = threading.Thread(target=_buffer._pool_hold, args=(0.3,))
    holder.start()
    time.sleep(0.1)  # the lock is held now
    pid = os.fork()
    if pid == 0:  # the child: one pooled batch (1.2 MB), then out
        try:
            buf = spdl.io.load_image_batch(srcs, width=224, height=224)
            os._exit(0 if np_batch(buf).shape == (8, 224, 224, 3) else 1)
        except BaseException:
            os._exit(2)
    holder.join()
    code = None
    deadline = time.monotonic() + 30
    while code is None and time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    if code is None:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    assert code == 0, "the child hung on the pool's lock" if code is None else f"child exit {code}"
    # and the parent's pool still works
    assert np_batch(spdl.io.load_image_batch(srcs, width=224, height=224)).shape == (8, 224, 224, 3)
