"""Garbage-collector probe for the profile scenario (loaded only when this folder is put on
the server's PYTHONPATH and CW_BENCH_GC_FILE names the output file).

Counts collections per generation with their total pause, keeps the pauses over 5 ms with
their wall-clock time, and writes it all twice a second as JSON with the process CPU time,
so the bench can read deltas over its measured window.
"""

import gc
import json
import os
import threading
import time

_OUT = os.environ.get("CW_BENCH_GC_FILE")


def _install(out: str) -> None:
    stats = {str(g): {"count": 0, "total_s": 0.0} for g in range(3)}
    pauses: list[tuple[float, int, float]] = []  # (wall time, generation, seconds)
    started: dict[int, float] = {}

    def callback(phase: str, info: dict[str, int]) -> None:
        gen = info["generation"]
        if phase == "start":
            started[gen] = time.perf_counter()
            return
        pause = time.perf_counter() - started.pop(gen, time.perf_counter())
        s = stats[str(gen)]
        s["count"] += 1
        s["total_s"] += pause
        if pause > 0.005:
            pauses.append((time.time(), gen, pause))
            del pauses[:-500]

    def dump() -> None:
        while True:
            time.sleep(0.5)
            body = {"stats": stats, "pauses": pauses, "cpu_s": time.process_time()}
            tmp = f"{out}.tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(body, f)
            os.replace(tmp, out)

    gc.callbacks.append(callback)
    threading.Thread(target=dump, name="cw-bench-gc-probe", daemon=True).start()


if _OUT:
    _install(_OUT)
