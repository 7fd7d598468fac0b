"""How well parallel slots stay busy: N fake experiments of a fixed length on k local slots.

Two figures, from the same run:
- efficiency = ideal / wall time, with ideal = N x job / k and `job` the fake's fixed sleep:
  everything that is not the job itself counts against it (interpreter start, the runner's own
  work, idle slots, scheduling, contention). The target, >= 0.95 at k = 4, is on this one.
- slot utilisation = N x t1 / k / wall time, with t1 the wall time per experiment of the same
  fake run on one slot: the per-experiment overhead is in t1, so only idle slots, scheduling and
  contention count against it. It flatters the runner; it says whether the slots stay busy.

The per-experiment overhead (t1 - job) is printed too: it is why efficiency stays below 1, and
why a longer job (--seconds) raises it. With --ray, the same on a local Ray started on the spot
(loopback only) gives the overhead of a Ray task against a local slot.

    .venv/bin/python bench/parallel_efficiency.py --n 16 --k 4 --seconds 2.0 [--ray]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from parallel_support import fake_settings  # noqa: E402

from hyperparameter_system.app import api  # noqa: E402

TARGET, TARGET_K = 0.95, 4


def measure(n: int, k: int, seconds: float, execution: dict) -> float:
    """Wall time of n experiments of `seconds` each on k slots."""
    options = [{"fake.sleep": seconds, "fake.metric": round(0.001 * (i + 1), 3), "fake.epochs": 1}
               for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        settings = fake_settings(Path(tmp), options, {"max_parallel": k, "gpus": "none",
                                                      **execution})
        experiments = api.select(settings)
        began = time.perf_counter()
        result = api.run(settings, experiments)
        wall = time.perf_counter() - began
    if result.count("done") != n:
        raise SystemExit(f"only {result.count('done')} of {n} experiments succeeded")
    return wall


def report(label: str, n: int, k: int, seconds: float, t1: float, wall: float) -> float:
    """Print one executor's figures; its efficiency (against the fixed job length)."""
    ideal, busy = n * seconds / k, n * t1 / k
    efficiency = ideal / wall
    print(f"{label}: {n} x {seconds:g} s on {k} slots in {wall:.2f} s")
    print(f"  efficiency        {efficiency:.3f}  (ideal N x job / k = {ideal:.2f} s)")
    print(f"  slot utilisation  {busy / wall:.3f}  (N x t1 / k = {busy:.2f} s, t1 = {t1:.3f} s "
          "per experiment on one slot, overhead included)")
    print(f"  overhead per experiment: {t1 - seconds:.3f} s on one slot (t1 - job), "
          f"{(wall - ideal) * k / n:.3f} s of slot time on {k} slots")
    return efficiency


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=16, help="experiments")
    parser.add_argument("--k", type=int, default=TARGET_K, help="parallel slots")
    parser.add_argument("--seconds", type=float, default=2.0,
                        help="length of each experiment (the fake's sleep)")
    parser.add_argument("--ray", action="store_true", help="also measure the Ray executor")
    args = parser.parse_args(argv)
    n, k, seconds = args.n, args.k, args.seconds
    t1 = measure(k, 1, seconds, {}) / k
    wall = measure(n, k, seconds, {})
    efficiency = report("local", n, k, seconds, t1, wall)
    if k == TARGET_K:
        print(f"  target: efficiency >= {TARGET} at k = {TARGET_K}: "
              + ("met" if efficiency >= TARGET else f"NOT met ({efficiency:.3f})"))
    if args.ray:
        began = time.perf_counter()
        from hyperparameter_system.run import ray_executor

        ray_executor.connect(fake_settings(Path(tempfile.mkdtemp()), [{"fake.sleep": 0}],
                                           {"executor": "ray"}))
        print(f"ray: local Ray started in {time.perf_counter() - began:.1f} s")
        ray_exec = {"executor": "ray", "cpus_per_experiment": 0.01}
        measure(k, k, 0.0, ray_exec)  # start the workers
        import ray

        # max_parallel 1 means "what the cluster holds" under Ray: one slot = all its CPUs
        whole = {**ray_exec, "cpus_per_experiment": ray.cluster_resources()["CPU"]}
        ray_t1 = measure(k, 1, seconds, whole) / k
        ray_wall = measure(n, k, seconds, ray_exec)
        report("ray", n, k, seconds, ray_t1, ray_wall)
        print(f"ray overhead per experiment over a local slot: {ray_t1 - t1:.3f} s on one slot, "
              f"{(ray_wall - wall) * k / n:.3f} s of slot time on {k} slots")
    return 0


if __name__ == "__main__":
    sys.exit(main())
