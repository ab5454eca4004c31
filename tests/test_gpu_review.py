"""The findings of the independent review of the GPU code (issue 8, part 4), checked without a GPU.

Pure functions (the page-locked size classes, the nvJPEG scratch rounds) are
checked directly. The rest runs against the host-memory fake of libcudart,
libcuda, libnvjpeg and NPP that tests/test_cuda.py builds (FAKE_CUDA_C), with
its log of the calls in order (and the pointer and stream of each), the GIL and
the current context at cudaHostAlloc / cudaFreeHost, the counts of header-only
and full parses, and a settable cudaMemGetInfo. This checks the order spdl.io issues its calls
in, not what NVIDIA's libraries do with them.
"""

from __future__ import annotations

import random
import sys

import pytest

from spdl.io import _keepalive, _nvjpeg_batch, _pinned, _testing

from test_cuda import FAKE_RUN_REVIEW, _run_on_fake_cuda

MiB = 1 << 20


# ---------------------------------------------------------------------------
# Page-locked size classes (finding 4)

@pytest.mark.parametrize("n, cls", [
    (1, 4096), (4096, 4096), (4097, 8192), (150528, 262144),
    (5 * 150528, MiB), (6 * 150528, MiB),          # nvJPEG's CPU fallback: 5 or 6 rows of 224x224
    (2 * MiB, 2 * MiB), (2 * MiB + 1, 4 * MiB), (9 * MiB + 5, 10 * MiB),
])
def test_pinned_size_class_examples(n, cls):
    assert _testing.pinned_size_class(n) == cls


def test_pinned_size_class_bounds():
    rng = random.Random(8)
    sizes = [rng.randrange(1, 1 << 34) for _ in range(2000)] + [rng.randrange(1, 1 << 22) for _ in range(2000)]
    for n in sizes:
        c = _testing.pinned_size_class(n)
        assert c >= n and c % 4096 == 0
        assert c - n < 2 * MiB, n                       # at most 2 MiB of waste per block
        if n > 4096:
            assert c < 2 * n, n                         # and less than the request itself
    assert _testing.pinned_size_class((1 << 64) - 1) == 0      # too large: the allocation fails


# ---------------------------------------------------------------------------
# nvJPEG scratch rounds (finding 6)

def _aligned(n):
    return (n + 255) // 256 * 256


def test_plan_rounds_examples():
    assert _testing.plan_rounds([], 100) == []
    assert _testing.plan_rounds([100, 100, 100], 1000) == [[0, 1, 2]]
    assert _testing.plan_rounds([256, 256, 256], 512) == [[0, 1], [2]]
    assert _testing.plan_rounds([10, 5000, 10], 1000) == [[0], [1], [2]]    # too large: alone
    # 64 images of 50 MP: 9.6 GB in one buffer before; now rounds of at most 256 MiB.
    rounds = _testing.plan_rounds([50_000_000 * 3] * 64, 256 * MiB)
    assert len(rounds) == 64 and all(len(r) == 1 for r in rounds)
    rounds = _testing.plan_rounds([224 * 224 * 3] * 64, 256 * MiB)
    assert rounds == [list(range(64))]


def test_plan_rounds_properties():
    rng = random.Random(6)
    for _ in range(300):
        sizes = [rng.choice([rng.randrange(1, 5000), rng.randrange(1, 100_000)]) for _ in range(rng.randrange(0, 40))]
        limit = rng.randrange(1, 60_000)
        rounds = _testing.plan_rounds(sizes, limit)
        assert [k for r in rounds for k in r] == list(range(len(sizes)))    # all, in order
        for r in rounds:
            total = sum(_aligned(sizes[k]) for k in r)
            assert total <= limit or len(r) == 1
        for a, b in zip(rounds, rounds[1:]):          # greedy: the next image did not fit
            assert sum(_aligned(sizes[k]) for k in a) + _aligned(sizes[b[0]]) > limit


# ---------------------------------------------------------------------------
# The fake of test_cuda.py (FAKE_CUDA_C), with its call log

# The preamble of test_cuda.py's review script (pointing spdl.io at the fake), then ours.
_PRELUDE = FAKE_RUN_REVIEW.split("\nfrom PIL import Image\n")[0] + "\nfrom PIL import Image\n"

_SCRIPT = r'''
import gc, threading
drv = ctypes.CDLL(os.path.join(FAKE, "drv", "libcuda.so.1"))
retains = (ctypes.c_long * 2).in_dll(drv, "fake_retains")
logbuf = ctypes.c_char * (1 << 20)
LOG = logbuf.in_dll(rt, "fake_log")
adder = ctypes.cast(rt.fake_log_add, ctypes.c_void_p)
for lib in (rt, nvj, npp):
    lib.fake_set_logger(adder)
rt.fake_set_ctx_probe(ctypes.cast(drv.fake_current, ctypes.c_void_p))
free_mem = ctypes.c_size_t.in_dll(rt, "fake_free_mem")
with_gil = ctypes.c_int.in_dll(rt, "fake_host_calls_with_gil")

def log():
    out = []
    for e in LOG.value.decode().split(";"):
        if e:
            name, a, b = e.split(":")
            out.append((name, int(a, 16), int(b, 16)))
    return out

def names(entries):
    return [e[0] for e in entries]

def reset():
    gc.collect(); _keepalive.synchronize_transfers(); rt.fake_log_reset()

def jpeg(w, h, comment=None, progressive=False):
    b = io.BytesIO()
    Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(b, "JPEG", quality=90, progressive=progressive)
    d = b.getvalue()
    if comment:
        c = comment.encode(); d = d[:2] + b"\xff\xfe" + (len(c) + 2).to_bytes(2, "big") + c + d[2:]
    return d

def png(w, h):
    b = io.BytesIO(); Image.fromarray(np.full((h, w, 3), 77, np.uint8)).save(b, "PNG"); return b.getvalue()

def colour(w, h):
    v = 30 + (w + h) % 200
    return [v, v + 1, v + 2]

def load(srcs, c, w=32, h=32, **kw):
    return _nvjpeg_batch.load_image_batch_nvjpeg(srcs, device_config=c, width=w, height=h, **kw)

cfg = CUDAConfig(1)
U = (1 << 64) - 1
def s(x):                   # a stream as the fake logs it (unsigned)
    return x & U

# --- Finding 2: page-locked memory is allocated and freed in the allocator's device's
# context, on a thread that has none and never asked host_allocator, and leaves it without one.
from spdl.io._batch import BatchJob
from spdl.io._plan import compile_plan
alloc1 = _pinned.host_allocator(cfg)
assert _pinned.host_allocator(CUDAConfig(1)) is alloc1 and _pinned.host_allocator(CUDAConfig(0)) is not alloc1
plan = compile_plan(width=40, height=40, pix_fmt="rgb24")
seen = {}
def worker():
    seen["before"] = drv.fake_current()
    job = BatchJob([png(30, 20)], plan, alloc1)
    job.run_worker()
    seen["buf"] = job.finish(True)
    seen["after"] = drv.fake_current()
reset()
t = threading.Thread(target=worker); t.start(); t.join()
assert (seen["before"], seen["after"]) == (-1, -1), seen
assert seen["buf"].pinned
hostallocs = [e for e in log() if e[0] == "hostalloc"]
assert [e[2] for e in hostallocs] == [1], hostallocs          # in cuda:1's context
def drop():
    del seen["buf"]; gc.collect()
    _pinned.release_pinned_memory()                             # cudaFreeHost on this fresh thread
    seen["after free"] = drv.fake_current()
t = threading.Thread(target=drop); t.start(); t.join()
frees = [e for e in log() if e[0] == "freehost"]
assert [e[2] for e in frees] == [1] and seen["after free"] == -1, (frees, seen)
assert list(retains)[0] == 0, list(retains)                  # device 0's context never made

# --- Finding 4: size classes: batches of 5 and 6 rows of 224x224 share one block; no
# cudaHostAlloc / cudaFreeHost ever runs with the GIL held, evictions included.
srcs6 = [png(30 + i, 20) for i in range(6)]
reset()
h0 = counts[C_HOSTALLOC]
for k in (5, 6, 5, 6):
    g = spdl.io.load_image_batch(srcs6[:k], width=224, height=224, device_config=cfg)
    del g; reset()
assert counts[C_HOSTALLOC] - h0 == 1, counts[C_HOSTALLOC] - h0
assert _testing.pinned_cache_sizes() == [1 << 20], _testing.pinned_cache_sizes()
f0 = counts[C_FREEHOST]
for side in (8, 64, 128, 256, 512, 700):        # six more classes: the cache (4 blocks) evicts
    g = spdl.io.load_image_batch([png(30, 20)], width=side, height=side, device_config=cfg)
    del g; reset()
assert counts[C_FREEHOST] - f0 == 3, counts[C_FREEHOST] - f0
assert len(_testing.pinned_cache_sizes()) == 4
_pinned.release_pinned_memory()
assert counts[C_HOSTALLOC] == counts[C_FREEHOST], (counts[C_HOSTALLOC], counts[C_FREEHOST])
assert with_gil.value == 0, with_gil.value

# Review finding 6: a request takes the smallest cached block of its class or larger, up to
# twice the class; the cache keeps at most PINNED_CACHE_BYTES, oldest let go first, and a
# block larger than that is not kept.
def batch(side):
    g = spdl.io.load_image_batch([png(30, 20)], width=side, height=side, device_config=cfg)
    del g; reset()
MiB = 1 << 20
h0, f0 = counts[C_HOSTALLOC], counts[C_FREEHOST]
batch(1000)                                   # 3,000,000 bytes: the 4 MiB class
assert _testing.pinned_cache_sizes() == [4 * MiB]
batch(800)                                    # 1,920,000: the 2 MiB class, served by the 4 MiB block
assert counts[C_HOSTALLOC] - h0 == 1 and _testing.pinned_cache_sizes() == [4 * MiB]
batch(500)                                    # 750,000: 1 MiB; 4 MiB is more than twice that
assert counts[C_HOSTALLOC] - h0 == 2 and _testing.pinned_cache_sizes() == [MiB, 4 * MiB]
batch(550)                                    # 907,500: 1 MiB again, the best fit (not the 4 MiB)
assert counts[C_HOSTALLOC] - h0 == 2 and _testing.pinned_cache_sizes() == [MiB, 4 * MiB]
old_cap = _testing.set_pinned_cache_bytes(5 * MiB + 1)
assert old_cap == 1 << 30
batch(200)                                    # 120,000: 128 KiB; 5.125 MiB > cap: the oldest (4 MiB) goes
assert counts[C_FREEHOST] - f0 == 1, counts[C_FREEHOST] - f0
assert _testing.pinned_cache_sizes() == [MiB // 8, MiB]
batch(1500)                                   # 6,750,000: 8 MiB, more than the cap: freed at once
assert counts[C_FREEHOST] - f0 == 2 and _testing.pinned_cache_sizes() == [MiB // 8, MiB]
_testing.set_pinned_cache_bytes(old_cap)
_pinned.release_pinned_memory()
assert counts[C_HOSTALLOC] == counts[C_FREEHOST]

# Review finding 9: a failed cudaHostAlloc reaches the error message with its cause.
fail[C_HOSTALLOC] = 1
try:
    batch(64)
    raise AssertionError("no error")
except MemoryError as e:
    assert "cannot allocate 12288 bytes (cudaHostAlloc (cuda:1))" in str(e), str(e)
    assert str(e).endswith(": cudaHostAlloc failed: cudaErrorFake"), str(e)
fail[C_HOSTALLOC] = 0
batch(64)                                     # and the next one works
_pinned.release_pinned_memory()

# --- Finding 3: the free is stream-ordered; no device-wide wait unless a consumer's stream
# is unknown.
cpu = spdl.io.load_image_batch([png(30, 20)], width=16, height=16)
def freed_by(make, export=None, thread=False):
    g = make()
    ptr, ours = g.data_ptr, g.stream
    caps = export(g) if export else None
    reset()
    def go():
        nonlocal g, caps
        del g, caps; gc.collect()
        seen["thread ctx"] = drv.fake_current()
    if thread:
        t = threading.Thread(target=go); t.start(); t.join()
        assert seen["thread ctx"] == -1, seen
    else:
        go()
    return ptr, s(ours if ours else 0), log()
sid = _testing.create_stream(1)
mk = lambda: spdl.io.transfer_buffer(cpu, device_config=CUDAConfig(1, stream=sid))
ptr, ours, L = freed_by(mk)
assert L == [("freeasync", ptr, ours)], L
ptr, ours, L = freed_by(mk, lambda g: g.__cuda_array_interface__)
assert L == [("freeasync", ptr, ours)], L                      # CAI v3: the consumer orders itself
ptr, ours, L = freed_by(mk, lambda g: [g.__dlpack__(stream=0x1234), g.__dlpack__(stream=1),
                                       g.__dlpack__(stream=0x1234, max_version=(1, 0))], thread=True)
assert names(L) == ["evrec", "wait", "evrec", "wait", "freeasync"], L
assert (L[0][2], L[1][2], L[2][2], L[3][2]) == (0x1234, ours, 1, ours) and L[4][1:] == (ptr, ours), L
for unknown in (-1, 2):       # no stream, or another thread's per-thread stream: the device
    ptr, ours, L = freed_by(mk, lambda g: g.__dlpack__(stream=unknown))
    assert L == [("devsync", 0, 0), ("freeasync", ptr, ours)], (unknown, L)
pools.value = 0
ptr, ours, L = freed_by(mk, lambda g: g.__dlpack__(stream=0x99))
assert names(L) == ["evrec", "wait", "streamsync", "free"] and L[2][2] == ours and L[3][1] == ptr, L
ptr, ours, L = freed_by(mk)
assert names(L) == ["streamsync", "free"], L
pools.value = 1
order = []
def pyalloc(n, dev, stream):
    b = ctypes.create_string_buffer(n); live[ctypes.addressof(b)] = b; return ctypes.addressof(b)
def pyfree(p):
    order.append(names(log())); del live[p]
live = {}
ptr, ours, L = freed_by(lambda: spdl.io.transfer_buffer(cpu, device_config=CUDAConfig(1, stream=sid, allocator=(pyalloc, pyfree))),
                        lambda g: g.__dlpack__(stream=0x77))
assert order == [["evrec", "wait"]] and live == {}, (order, L)

# --- Finding 1: the host waits for the hardware decode before anything reads or frees its
# scratch; the GPU-hybrid decode is not waited for.
clean = [jpeg(64, 48), jpeg(50, 50, comment="FAKE_NOHW")]
reset()
out = load(clean, cfg)
a = _testing.to_host(out)
assert (a[0][4:28] == colour(64, 48)).all() and (a[1] == colour(50, 50)).all()
L = log()
n = names(L)
hw = n.index("hwdec"); hy = n.index("hydec")
hw_scratch = L[hw][1]
assert n[hw + 1:hw + 3] == ["evrec", "evsync"], n
first_use = min(k for k in range(hw, len(n)) if n[k] in ("npp", "freeasync"))
assert first_use > hw + 2, n
assert ("freeasync", hw_scratch) in [e[:2] for e in L[hw:]]       # given back after the resize
assert "evsync" not in n[hy:n.index("npp", hy)], n                 # hybrid: stream order
assert "devsync" not in n
del out

# --- Finding 5: the hardware check parses headers only; a multi-scan (progressive) JPEG is
# not offered to the hardware decoder.
p0 = ctypes.c_long.in_dll(nvj, "fake_parse_header").value
f0 = ctypes.c_long.in_dll(nvj, "fake_parse_full").value
hw0 = ctypes.c_long.in_dll(nvj, "fake_hw_images").value
out = load([jpeg(64, 48), jpeg(64, 48, progressive=True)], cfg)
assert ctypes.c_long.in_dll(nvj, "fake_parse_header").value - p0 == 1      # the progressive one is skipped
assert ctypes.c_long.in_dll(nvj, "fake_parse_full").value == f0 == 0
assert ctypes.c_long.in_dll(nvj, "fake_hw_images").value - hw0 == 1
assert (_testing.to_host(out)[1][4:28] == colour(64, 48)).all()
del out

# --- Finding 6: the scratch is decoded in rounds of bounded size, each resized and freed
# before the next. A quarter of the free memory is 20,000 bytes here: 64x48 RGB is 9,216.
# (The floor under the limit, 64 MiB, is lowered to 16,000 bytes for this.)
old_bounds = _testing.set_scratch_bounds(16000, 256 << 20)
assert old_bounds == (64 << 20, 256 << 20), old_bounds
free_mem.value = 80000
imgs = [jpeg(64, 48, comment="FAKE_NOHW"), jpeg(64, 48, comment="FAKE_NOHW"), jpeg(64, 48, comment="FAKE_NOHW"),
        jpeg(64, 48), jpeg(64, 48), jpeg(64, 48), png(30, 20)]
for pix_fmt in ("rgb24", "rgbp"):
    reset()
    out = load(imgs, cfg, pix_fmt=pix_fmt)
    a = _testing.to_host(out)
    if pix_fmt == "rgbp": a = a.transpose(0, 2, 3, 1)
    for k in range(6):
        assert (a[k][4:28] == colour(64, 48)).all() and (a[k][:4] == 0).all(), (pix_fmt, k)
    np.testing.assert_array_equal(a[6], np.asarray(spdl.io.load_image_batch([png(30, 20)], width=32, height=32))[0])
    n = names(log())
    assert n.count("hwdec") == 2 and n.count("hydec") == 2, n
    # Each round: allocate, (wait,) decode, resize, free; the next round allocates after.
    decs = [k for k, x in enumerate(n) if x in ("hwdec", "hydec")]
    for d0, d1 in zip(decs, decs[1:]):
        assert "freeasync" in n[d0:d1] and "npp" in n[d0:d1], n
    del out
# Review finding 5: the floor. A quarter of the free memory (2,000 bytes) is below the floor
# (20,000 here): rounds of two images, not one.
_testing.set_scratch_bounds(20000, 256 << 20)
free_mem.value = 8000
reset()
out = load(imgs, cfg)
n = names(log())
assert n.count("hwdec") == 2 and n.count("hydec") == 2, n
del out
# With the caller's allocator the free memory is not asked (its cache is not counted in it):
# the floor and the ceiling alone decide, here one round per backend.
_testing.set_scratch_bounds(16000, 1 << 20)
live = {}
reset()
out = load(imgs, CUDAConfig(1, allocator=(lambda n, d, st: pyalloc(n, d, st), lambda p: live.pop(p))))
n = names(log())
assert n.count("hwdec") == 1 and n.count("hydec") == 1, n
del out
gc.collect()
_testing.set_scratch_bounds(*old_bounds)
free_mem.value = 1 << 30

# Review finding 3: a failed hardware round is searched by halves. One image among 16 that
# the hardware backend fails costs 1 + 2 * log2(16) = 9 hardware calls (not 1 + 16), each
# after a stream sync; the other 15 are decoded by it, the failed one by the hybrid backend.
many = [jpeg(40 + k, 30) for k in range(16)]
many[11] = jpeg(40 + 11, 30, comment="FAKE_HW_FAIL")
for strict in (True, False):
    reset()
    hw0 = ctypes.c_long.in_dll(nvj, "fake_hw_images").value
    out = load(many, cfg, strict=strict)
    n = names(log())
    assert n.count("hwdec") == 9 and n.count("hydec") == 1, n
    calls = [k for k, x in enumerate(n) if x == "hwdec"]
    for c0, c1 in zip(calls, calls[1:]):
        assert "streamsync" in n[c0:c1], n
    assert ctypes.c_long.in_dll(nvj, "fake_hw_images").value - hw0 == 15
    a = _testing.to_host(out)
    for k in range(16):
        w = 40 + k
        rows = (32 * 30) // w
        top = (32 - rows) // 2
        assert (a[k][top + 1] == colour(w, 30)).all(), k
    assert out.indices == tuple(range(16)) and out.errors == {}
    del out
# Two failing images, at both ends: both found, the rest decoded by the hardware backend.
many[0] = jpeg(40, 30, comment="FAKE_HW_FAIL")
many[15] = jpeg(55, 30, comment="FAKE_HW_FAIL")
many[11] = jpeg(51, 30)
reset()
hw0 = ctypes.c_long.in_dll(nvj, "fake_hw_images").value
out = load(many, cfg)
assert ctypes.c_long.in_dll(nvj, "fake_hw_images").value - hw0 == 14
assert names(log()).count("hydec") == 1
assert out.indices == tuple(range(16))
del out

# --- Errors: a failed wait for the hardware decode raises that error, leaves the scratch
# with the decoder (never handed back while it may be written), and retires the decoder.
cfg0 = CUDAConfig(0)
reset()
fail[C_EVSYNC] = 1
try:
    load([jpeg(64, 48)], cfg0)
    raise AssertionError("no error")
except spdl.io.CUDAError as e:
    assert e.op == "cudaEventSynchronize", e.op
fail[C_EVSYNC] = 0
L = log()
scratch = [e[1] for e in L if e[0] == "hwdec"]
assert len(scratch) == 1 and ("freeasync", scratch[0]) not in [e[:2] for e in L], L
try:
    load([jpeg(64, 48)], cfg0)
    raise AssertionError("no error")
except spdl.io.CUDAError as e:
    assert "unusable" in str(e), str(e)
_testing.destroy_stream(1, sid)
# The GIL probe itself: a call made with the GIL held (PyDLL keeps it) is counted.
ctypes.PyDLL(rt._name).cudaFreeHost(None)
assert with_gil.value == 1, with_gil.value
# --- Files are read as the CPU path reads them: a FIFO (or any file that is not a regular
# file) is refused at once, never waited on, and the other inputs load.
fifo = os.path.join(sys.argv[1], "fifo.jpg")
os.mkfifo(fifo)
good = os.path.join(sys.argv[1], "good.jpg")
with open(good, "wb") as f:
    f.write(jpeg(64, 48))
out = load([fifo, good], cfg, strict=False)
assert out.indices == (1,) and isinstance(out.errors[0], spdl.io.SourceError), out.errors
assert "not a regular file" in str(out.errors[0]), out.errors[0]
reset()

print("GPU REVIEW OK")
'''


def test_review_findings_on_the_fake(tmp_path):
    """Findings 1-6 on the fake: call order of the hardware decode and its scratch, the
    stream-ordered free with DLPack consumer streams, the page-locked allocator's device
    scope, GIL and size classes, header-only parsing, scratch rounds."""
    _run_on_the_fake(tmp_path, _SCRIPT, "GPU REVIEW OK")


def _run_on_the_fake(tmp_path, script, done):
    """Run script after the prelude against the fake (with a hardware backend); it prints done."""
    r = _run_on_fake_cuda(tmp_path, _PRELUDE + script, hw=True)
    assert r.stdout.strip().endswith(done)


# ---------------------------------------------------------------------------
# Training plans (issue 10) on the fake: crop boxes as NPP's source ROI, flips by NPP's
# mirror, the CPU path's rows and crops, float and NCHW output made by NPP

_TRAIN_SCRIPT = r'''
import asyncio
from spdl.io._plan import compile_plan
rois = (ctypes.c_int * 6 * 4096).in_dll(npp, "fake_npp_rois")
nrois = ctypes.c_long.in_dll(npp, "fake_npp_nrois")
mirrors = (ctypes.c_longlong * 5 * 4096).in_dll(npp, "fake_mirrors")
nmirrors = ctypes.c_long.in_dll(npp, "fake_nmirrors")
interp = ctypes.c_int.in_dll(npp, "fake_npp_last_interp")
cfg = CUDAConfig(1)

def L(lib, name):
    return ctypes.c_long.in_dll(lib, name).value

def jpeg(w, h, comment="FAKE_GRADIENT"):
    b = io.BytesIO(); Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(b, "JPEG", quality=90)
    d = b.getvalue()
    c = comment.encode()
    return d[:2] + b"\xff\xfe" + (len(c) + 2).to_bytes(2, "big") + c + d[2:]

def png(w, h):
    b = io.BytesIO(); Image.fromarray(np.full((h, w, 3), 77, np.uint8)).save(b, "PNG"); return b.getvalue()

def fake_pixels(w, h, box, W, H):
    """The fake's decode of a w x h FAKE_GRADIENT JPEG (R = x, G = y, B = v), its box
    resized to W x H by the fake's nearest neighbour."""
    bx, by, bw, bh = box
    xs = (bx + np.arange(W) * bw // W) % 256
    ys = (by + np.arange(H) * bh // H) % 256
    out = np.empty((H, W, 3), np.uint8)
    out[..., 0] = xs[None, :]
    out[..., 1] = ys[:, None]
    out[..., 2] = 30 + (w + h) % 200
    return out

def records():
    r = [tuple(rois[k]) for k in range(min(nrois.value, 4096))]
    m = [tuple(mirrors[k]) for k in range(min(nmirrors.value, 4096))]
    npp.fake_npp_record_reset()
    return r, m

def load(srcs, **kw):
    return _nvjpeg_batch.load_image_batch_nvjpeg(srcs, device_config=cfg, **kw)

def check_gpu_rows(out, srcs, sizes, gpu_rows, W, H, planar=False):
    """The GPU rows are the fake's pixels of their box, mirrored when flipped; NPP saw each
    box as the source ROI and mirrored exactly the flipped rows, whole, left to right."""
    a = _testing.to_host(out)
    if planar:
        a = a.transpose(0, 2, 3, 1)
    r, m = records()
    want_rois = []
    for k in gpu_rows:
        x, y, w, h, flip = out.crops[k]
        iw, ih = sizes[out.indices[k]]
        want = fake_pixels(iw, ih, (x, y, w, h), W, H)
        np.testing.assert_array_equal(a[k], want[:, ::-1] if flip else want)
        want_rois.append((x, y, w, h, W, H))
    assert sorted(r) == sorted(want_rois), (r, want_rois)
    row_bytes = W * H * 3
    flipped = sorted(out.data_ptr + k * row_bytes for k in gpu_rows if out.crops[k][4])
    if out.errors:      # compacted: the mirrors were made in the rows of the first buffer
        assert len(m) == len(flipped), (m, flipped)
    else:
        assert sorted(e[0] for e in m) == flipped, (m, flipped)
    assert all(e[1:] == (W * 3, W, H, 1) for e in m), m     # the whole row, NPP_VERTICAL_AXIS

# --- RandomResizedCrop + hflip with a probability: the GPU draws what the CPU path draws
# for the same seed and index, the CPU rows (a PNG, a JPEG nvJPEG fails) keep their own
# index's draws, and the batch reports every row's crop.
srcs = [jpeg(200, 150), png(60, 40), jpeg(97, 61), jpeg(300, 200, "FAKE_GRADIENT FAKE_FAIL"),
        jpeg(120, 90), jpeg(64, 64)]
sizes = {0: (200, 150), 1: (60, 40), 2: (97, 61), 3: (300, 200), 4: (120, 90), 5: (64, 64)}
kw = dict(width=32, height=24, crop=spdl.io.RandomResizedCrop(), hflip=0.5, seed=11)
npp.fake_npp_record_reset()
out = load(srcs, **kw)
cpu = spdl.io.load_image_batch(srcs, **kw)
assert out.indices == cpu.indices == tuple(range(6)) and out.errors == {}
assert out.crops == cpu.crops, (out.crops, cpu.crops)
assert any(c[4] for c in out.crops) and not all(c[4] for c in out.crops), out.crops
assert len({c[:4] for c in out.crops}) == 6, out.crops                # not one draw for all
a = _testing.to_host(out)
for k in (1, 3):                                                       # the CPU path's rows
    np.testing.assert_array_equal(a[k], np.asarray(cpu)[k])
check_gpu_rows(out, srcs, sizes, [0, 2, 4, 5], 32, 24)
again = asyncio.run(spdl.io.async_load_image_batch_nvjpeg(srcs, device_config=cfg, **kw))
assert again.crops == out.crops
np.testing.assert_array_equal(_testing.to_host(again), a)
npp.fake_npp_record_reset()
# A CPU row after the last GPU row, and a batch whose every row is the CPU path's.
out = load([jpeg(200, 150), png(60, 40)], **kw)
assert out.crops == spdl.io.load_image_batch([jpeg(200, 150), png(60, 40)], **kw).crops
out = load([png(60, 40), png(50, 70)], **kw)
assert out.crops == spdl.io.load_image_batch([png(60, 40), png(50, 70)], **kw).crops
npp.fake_npp_record_reset()

# --- Boxes and per-input flips: a box outside its image fails that input with the CPU
# path's error; the others are NPP's source ROI; the interpolation follows the box's size.
boxes = [(10, 20, 32, 24), (0, 0, 60, 40), (90, 0, 20, 20), (0, 0, 200, 150)]
flips = [True, False, False, True]
srcs = [jpeg(200, 150), png(60, 40), jpeg(97, 61), jpeg(200, 150)]
out = load(srcs, width=32, height=24, crop=boxes, hflip=flips, strict=False)
cpu = spdl.io.load_image_batch(srcs, width=32, height=24, crop=boxes, hflip=flips, strict=False)
assert out.indices == cpu.indices == (0, 1, 3) and set(out.errors) == {2}, (out.indices, out.errors)
assert type(out.errors[2]) is type(cpu.errors[2]) and str(out.errors[2]) == str(cpu.errors[2])
assert "the crop box (90, 0, 20, 20) lies outside the 97x61 image" in str(out.errors[2]), out.errors[2]
assert out.crops == cpu.crops == ((10, 20, 32, 24, True), (0, 0, 60, 40, False), (0, 0, 200, 150, True))
np.testing.assert_array_equal(_testing.to_host(out)[1], np.asarray(cpu)[1])
check_gpu_rows(out, srcs, {0: (200, 150), 1: (60, 40), 3: (200, 150)}, [0, 2], 32, 24)
for box, want in (((10, 20, 32, 24), 1), ((0, 0, 64, 48), 8), ((0, 0, 16, 48), 4)):
    load([jpeg(200, 150)], width=32, height=24, crop=[box])
    assert interp.value == want, (box, interp.value, want)
records()
for bad in ({"crop": boxes[:3]}, {"hflip": [True] * 5}):
    try:
        load(srcs, width=32, height=24, **bad)
        raise AssertionError("no error")
    except ValueError as e:
        try:
            spdl.io.load_image_batch(srcs, width=32, height=24, **bad)
            raise AssertionError("no error")
        except ValueError as c:
            assert str(e) == str(c), (str(e), str(c))

# --- CenterCrop into planar RGB (no flips: the plan flips packed formats only).
srcs = [jpeg(200, 150), jpeg(97, 61)]
out = load(srcs, width=32, height=32, pix_fmt="rgbp", crop=spdl.io.CenterCrop(0.875))
cpu = spdl.io.load_image_batch(srcs, width=32, height=32, pix_fmt="rgbp", crop=spdl.io.CenterCrop(0.875))
assert out.shape == (2, 3, 32, 32) and out.crops == cpu.crops, (out.crops, cpu.crops)
check_gpu_rows(out, srcs, {0: (200, 150), 1: (97, 61)}, [0, 1], 32, 32, planar=True)

# --- hflip alone: the image placed by scale_mode ("pad": black bands), then the whole row
# mirrored as the CPU path mirrors it.
srcs = [jpeg(400, 100), jpeg(50, 50)]
out = load(srcs, width=64, height=64, hflip=True)
assert out.crops == ((0, 0, 400, 100, True), (0, 0, 50, 50, True)), out.crops
a = _testing.to_host(out)
band = fake_pixels(400, 100, (0, 0, 400, 100), 64, 16)[:, ::-1]
assert (a[0, :24] == 0).all() and (a[0, 40:] == 0).all()
np.testing.assert_array_equal(a[0, 24:40], band)
np.testing.assert_array_equal(a[1], fake_pixels(50, 50, (0, 0, 50, 50), 64, 64)[:, ::-1])
r, m = records()
assert len(m) == 2 and all(e[1:] == (64 * 3, 64, 64, 1) for e in m), m
# No crop, no flip: no crops reported, no mirror.
out = load(srcs, width=64, height=64)
assert out.crops is None and records()[1] == []

# --- dtype / layout on the GPU: the uint8 packed rows (the GPU's, and the CPU path's loaded
# as uint8) looked up per channel in the CPU path's table by NPP (device table, 8 bits),
# split into planes first, interleaved after for NHWC, float16 through its 16-bit patterns;
# the rows of failed inputs dropped by the conversion itself.
class Conv(ctypes.Structure):
    _fields_ = [("fn", ctypes.c_int), ("w", ctypes.c_int), ("h", ctypes.c_int), ("sstep", ctypes.c_int),
                ("dstep", ctypes.c_int), ("extra", ctypes.c_int), ("table", ctypes.c_uint * 256),
                ("dev", ctypes.c_int)]
icc = ctypes.CDLL(os.path.join(FAKE, "libnppicc.so.12"))
conv = (Conv * 4096).in_dll(icc, "fake_conv")
nconv = ctypes.c_long.in_dll(icc, "fake_nconv")
LUT, SPLIT, P3C3_32F, P3C3_16U, CVT = 1, 2, 3, 4, 5

def conv_calls():
    out = [conv[k] for k in range(min(nconv.value, 4096))]
    out = [(c.fn, c.w, c.h, c.sstep, c.dstep, c.extra, tuple(c.table) if c.fn == LUT else None, c.dev)
           for c in out]
    icc.fake_npp_conv_reset()
    return out

def table(dtype, mean, std):
    """The CPU path's numbers (torchvision's ToDtype + Normalize in float32), per channel."""
    v = np.arange(256, dtype=np.float32) / np.float32(255)
    m = np.array(mean or (0.0,) * 3, np.float32)[:, None]
    d = np.array(std or (1.0,) * 3, np.float32)[:, None]
    return ((v[None, :] - m) / d).astype(dtype)

def bits(a):
    return a.view({4: np.uint32, 2: np.uint16, 1: np.uint8}[a.dtype.itemsize])

srcs = [jpeg(200, 150), png(60, 40), jpeg(300, 200, "FAKE_GRADIENT FAKE_FAIL"), b"not an image",
        jpeg(400, 100), jpeg(97, 61)]
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
cases = [
    ({"dtype": "float32", "mean": MEAN, "std": STD}, {}),
    ({"dtype": "float32", "layout": "NCHW"}, {"crop": spdl.io.RandomResizedCrop(), "hflip": 0.5}),
    ({"dtype": "float16", "layout": "NCHW", "mean": MEAN, "std": STD}, {"crop": spdl.io.RandomResizedCrop()}),
    ({"dtype": "float16", "mean": [0.5, 0.25, 0.125], "std": [1e-3, 0.5, 3.0]}, {"pix_fmt": "bgr24", "hflip": True}),
    ({"layout": "NCHW"}, {"crop": spdl.io.CenterCrop(), "hflip": [True, False] * 3}),
]
W, H = 32, 24
n0 = L(nvj, "fake_nvjpeg_batched_calls")
for extra, geo in cases:
    kw = dict(width=W, height=H, seed=3, strict=False, **geo)
    conv_calls()
    out = load(srcs, **kw, **extra)
    calls = conv_calls()
    u8 = load(srcs, **kw)                                   # the same rows, uint8 NHWC
    assert conv_calls() == []                               # no conversion for uint8 NHWC
    cpu = spdl.io.load_image_batch(srcs, **kw, **extra)
    dtype = np.dtype(extra.get("dtype", "uint8"))
    nchw = extra.get("layout") == "NCHW"
    assert out.indices == cpu.indices == u8.indices == (0, 1, 2, 4, 5), out.indices
    assert set(out.errors) == {3} and str(out.errors[3]) == str(cpu.errors[3])
    assert out.crops == cpu.crops == u8.crops, (out.crops, cpu.crops)
    assert out.dtype == cpu.dtype and out.shape == cpu.shape, (out.dtype, out.shape, cpu.shape)
    assert out.shape == ((5, 3, H, W) if nchw else (5, H, W, 3)) and out.pix_fmt == cpu.pix_fmt
    a, c, u = _testing.to_host(out), np.asarray(cpu), _testing.to_host(u8)
    assert a.dtype == dtype, a.dtype
    # Every element is the CPU path's table at the uint8 pixel, borders (pad) included.
    t = table(dtype, extra.get("mean"), extra.get("std")) if dtype != np.uint8 else None
    want = np.stack([t[k][u[..., k]] for k in range(3)], -1) if t is not None else u
    if nchw:
        want = want.transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(bits(a), bits(np.ascontiguousarray(want)))
    # The CPU path's rows (the PNG, the JPEG nvJPEG failed) are exactly load_image_batch's.
    for k in (1, 2):
        np.testing.assert_array_equal(bits(a[k]), bits(c[k]))
    # NPP's calls, row by row: the split, the look-ups, then the interleave or the conversion.
    per_row = [(SPLIT, W, H, 3 * W, W, 0)]
    if dtype != np.uint8:
        per_row += [(LUT, W, H, W, 4 * W, 8)] * 3
    if dtype == np.float32 and not nchw:
        per_row += [(P3C3_32F, W, H, 4 * W, 12 * W, 0)]
    if dtype == np.float16:
        per_row += [(CVT, W, 3 * H, 4 * W, 2 * W, 0)]        # NPP_RND_NEAR, the three planes at once
        if not nchw:
            per_row += [(P3C3_16U, W, H, 2 * W, 6 * W, 0)]
    assert [x[:6] for x in calls] == per_row * 5, [x[:6] for x in calls]
    luts = [x for x in calls if x[0] == LUT]
    assert all(x[7] == 1 for x in luts), "the table must be in device memory"
    if t is not None:
        # float32: the values' bits; float16: its 16-bit patterns, as float32 integers.
        host = (t.view(np.uint32) if dtype == np.float32 else t.view(np.uint16).astype(np.float32).view(np.uint32))
        assert [x[6] for x in luts] == [tuple(int(v) for v in host[k]) for k in range(3)] * 5
    again = asyncio.run(spdl.io.async_load_image_batch_nvjpeg(srcs, device_config=cfg, **kw, **extra))
    assert again.indices == out.indices and again.crops == out.crops
    np.testing.assert_array_equal(bits(_testing.to_host(again)), bits(a))
    conv_calls()
assert L(nvj, "fake_nvjpeg_batched_calls") > n0             # the GPU decoded them
# float16 is the CPU path's rounding (to nearest, ties to even, overflow to inf) because it
# is the CPU path's own table: a std this small overflows some entries.
out = load([jpeg(64, 48)], width=W, height=H, dtype="float16", mean=[0.0] * 3, std=[1e-6] * 3)
assert np.isinf(_testing.to_host(out)).any()
np.testing.assert_array_equal(
    bits(_testing.to_host(out)),
    bits(table(np.float16, [0.0] * 3, [1e-6] * 3)[0][_testing.to_host(load([jpeg(64, 48)], width=W, height=H))]))
# Nothing left: an empty batch of the plan's dtype and layout; no input at all, the same.
for bad in ([b"not an image"], []):
    out = load(bad, width=W, height=H, dtype="float32", layout="NCHW", strict=False)
    assert out.shape == (0, 3, H, W) and _testing.to_host(out).dtype == np.float32, out.shape
# A custom allocator's memory holds the table and the scratch as well.
live = {}
def alloc(n, dev, stream):
    b = ctypes.create_string_buffer(n); live[ctypes.addressof(b)] = b; return ctypes.addressof(b)
def free(p):
    del live[p]
acfg = CUDAConfig(1, stream=7, allocator=(alloc, free))
out = _nvjpeg_batch.load_image_batch_nvjpeg(srcs, device_config=acfg, width=W, height=H, dtype="float16",
                                            strict=False)
want = load(srcs, width=W, height=H, dtype="float16", strict=False)
np.testing.assert_array_equal(bits(_testing.to_host(out)), bits(_testing.to_host(want)))
del out
conv_calls()
gc.collect(); _keepalive.synchronize_transfers()
assert live == {}, live
gc.collect(); _keepalive.synchronize_transfers()
print("GPU TRAIN OK")
'''


def test_training_plans_on_the_fake(tmp_path):
    """crop= and hflip= on the nvJPEG path: the same draws as the CPU path (GPU rows and the
    CPU path's rows of one batch), each box NPP's source ROI, mirrors for the flipped rows
    only, buf.crops, the CPU path's errors; dtype/layout made on the GPU by NPP from the
    uint8 rows with the CPU path's table (its values exactly; NPP's arguments checked)."""
    _run_on_the_fake(tmp_path, _TRAIN_SCRIPT, "GPU TRAIN OK")
