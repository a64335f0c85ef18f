"""The GIL is released while the library computes: another Python thread
keeps running during a long call instead of freezing until it returns."""

import threading
import time

import numpy as np

import attn


def test_other_python_threads_run_during_a_long_call():
    attn.set_num_threads(1)
    try:
        # Grow the problem until one call takes >= 0.1 s (whatever the kernel's speed).
        L, took = 64, 0.0
        while True:
            q = np.random.default_rng(0).standard_normal((1, 4, L, 64)).astype(np.float32)
            start = time.perf_counter()
            attn.scaled_dot_product_attention(q, q, q)
            took = time.perf_counter() - start
            if took >= 0.1 or L >= 8192:
                break
            L *= 2
        done = threading.Event()
        worker = threading.Thread(target=lambda: (attn.scaled_dot_product_attention(q, q, q), done.set()))
        ticks = [time.perf_counter()]
        worker.start()
        while not done.is_set():  # this thread needs the GIL for every iteration
            ticks.append(time.perf_counter())
        worker.join()
        longest_freeze = max(b - a for a, b in zip(ticks, ticks[1:]))
        # Holding the GIL would freeze this loop for the whole call (~took).
        assert longest_freeze < 0.5 * took, (longest_freeze, took)
    finally:
        attn.set_num_threads(0)
