"""How well parallel slots stay busy: N fixed-length fake experiments on k local slots.

efficiency = ideal / actual wall time, with ideal = N x t1 / k, where t1 is the wall time per
experiment of the same fake run on one slot (interpreter start and the runner's own work
included): only idle slots, scheduling and contention count against it. `nominal` uses the
fake's sleep alone as t1. With --ray, the same on a local Ray started on the spot (loopback
only) gives the per-experiment overhead of a Ray task against a local slot.

    .venv/bin/python bench/parallel_efficiency.py --n 16 --k 4 --seconds 1.0 [--ray]
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

from hyperparameter_system import api  # noqa: E402


def measure(n: int, k: int, seconds: float, execution: dict) -> tuple[float, float]:
    """(wall time, summed experiment durations) of n experiments on k slots."""
    options = [{"fake.sleep": seconds, "fake.metric": round(0.001 * (i + 1), 3), "fake.epochs": 1}
               for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        settings = fake_settings(Path(tmp), options, {"max_parallel": k, "gpus": "none",
                                                      **execution})
        experiments = api.select(settings)
        began = time.perf_counter()
        result = api.run(settings, experiments, show=False)
        wall = time.perf_counter() - began
    if result.count("done") != n:
        raise SystemExit(f"only {result.count('done')} of {n} experiments succeeded")
    return wall, sum(o.duration_s for o in result.outcomes)


def report(label: str, n: int, k: int, seconds: float, t1: float, wall: float) -> None:
    ideal, nominal = n * t1 / k, n * seconds / k
    print(f"{label}: {n} x {seconds:g} s on {k} slots in {wall:.2f} s; one slot takes "
          f"{t1:.3f} s per experiment; ideal {ideal:.2f} s -> efficiency {ideal / wall:.3f} "
          f"(nominal {nominal / wall:.3f})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=16, help="experiments")
    parser.add_argument("--k", type=int, default=4, help="parallel slots")
    parser.add_argument("--seconds", type=float, default=1.0, help="length of each experiment")
    parser.add_argument("--ray", action="store_true", help="also measure the Ray executor")
    args = parser.parse_args(argv)
    n, k, seconds = args.n, args.k, args.seconds
    t1 = measure(k, 1, seconds, {})[0] / k
    wall = measure(n, k, seconds, {})[0]
    report("local", n, k, seconds, t1, wall)
    if args.ray:
        began = time.perf_counter()
        from hyperparameter_system import ray_executor

        ray_executor.connect(fake_settings(Path(tempfile.mkdtemp()), [{"fake.sleep": 0}],
                                           {"executor": "ray"}))
        print(f"ray: local Ray started in {time.perf_counter() - began:.1f} s")
        ray_exec = {"executor": "ray", "cpus_per_experiment": 0.01}
        measure(k, k, 0.0, ray_exec)  # start the workers
        import ray

        # max_parallel 1 means "what the cluster holds" under Ray: one slot = all its CPUs
        whole = {**ray_exec, "cpus_per_experiment": ray.cluster_resources()["CPU"]}
        ray_t1 = measure(k, 1, seconds, whole)[0] / k
        ray_wall = measure(n, k, seconds, ray_exec)[0]
        report("ray", n, k, seconds, ray_t1, ray_wall)
        print(f"ray overhead per experiment: {ray_t1 - t1:.3f} s on one slot, "
              f"{(ray_wall - wall) * k / n:.3f} s of wall time on {k} slots")
    return 0


if __name__ == "__main__":
    sys.exit(main())
