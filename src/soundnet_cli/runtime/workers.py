"""How many decoding processes and torch threads a run uses, planned without importing torch.

Torch-free (like :mod:`.decode`): a command plans its workers and may start decoding
(:func:`.run.early_decoder`) before torch loads. :func:`configure_threads` imports torch only when
called. :meth:`.options.RunOptions.plan` applies this plan, for the CLI and library callers alike.
"""

from __future__ import annotations


def available_cores() -> int:
    """CPU cores this process may run on."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def auto_workers(device: object, files: int, requested: int | None = None) -> int:
    """Decoding processes for ``files`` inputs: ``requested`` if given, else a plan.

    On CPU, decoding and resampling cost about what the forward pass to conv5 plus writing costs,
    so half the cores decode and the rest run torch. At least two workers even on 2 cores: the
    stages wait on each other, and a third process fills those gaps (both measured:
    ``benchmarks/RESULTS.md``). On a GPU the forward pass is cheap, so all but one core decode.
    One file: decode in the main process.
    """
    if requested is not None:
        return requested
    if files <= 1:
        return 0
    cores = available_cores()
    if device_type(device) != "cpu":
        return max(1, min(8, cores - 1))
    return min(8, max(2, cores // 2), files)


def plan_threads(device: object, workers: int) -> int | None:
    """Torch threads for a run with ``workers`` decoding processes: on CPU, the cores the workers
    leave free (at least one); ``None`` (torch's own setting) on other devices or when
    ``OMP_NUM_THREADS`` is set (the user's choice wins).

    Oversubscribing cores makes torch's OpenMP threads spin-wait on each other: a forward pass with
    more threads than free cores runs far slower (``benchmarks/RESULTS.md``).
    """
    import os

    if device_type(device) != "cpu" or os.environ.get("OMP_NUM_THREADS"):
        return None
    return max(1, available_cores() - workers)


def configure_threads(device: object, workers: int) -> None:
    """Set torch's threads (for the whole process) to :func:`plan_threads`, when it has a plan."""
    threads = plan_threads(device, workers)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def device_type(device: object) -> str:
    """``"cpu"``, ``"cuda"``, ... of a ``torch.device`` or a ``--device`` string (``auto`` is
    guessed without torch, see :func:`guess_device_type`); ``None`` is ``"cpu"``."""
    if isinstance(device, str):
        return guess_device_type(device)
    return str(getattr(device, "type", "cpu"))


#: Niceness of the decoding processes: the network's process, which waits on them, keeps its core
#: when there are more processes than cores (measured: ``benchmarks/RESULTS.md``).
DECODE_NICE = 10


def guess_device_type(device: str) -> str:
    """The device type a ``--device`` value will resolve to, guessed without importing torch
    (``auto`` is ``cuda`` where an NVIDIA driver is present). Only used to plan decoding
    processes before torch loads; the network's real device is resolved later."""
    import os

    name = device.strip().lower()
    if name == "auto":
        return "cuda" if os.path.exists("/dev/nvidiactl") else "cpu"
    return name.split(":", 1)[0]
