"""What machine a benchmark ran on (shared by the benchmark scripts)."""

import platform


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or what platform knows)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_lines(*extra_versions: str) -> list[str]:
    """The header every benchmark prints: date, CPU and usable cores, OS, JAX backend and device, versions
    (``extra_versions``: more "name version" words, e.g. scipy's or ngspice's) and the load average."""
    import datetime
    import os

    import jax
    import jaxlib
    import numpy as np

    import ionkinetics as ik

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    dev = jax.devices()[0]
    versions = [f"python {platform.python_version()}", f"jax {jax.__version__}", f"jaxlib {jaxlib.__version__}",
                f"numpy {np.__version__}", *extra_versions, f"ionkinetics {ik.__version__}"]  # fmt: skip
    return [
        f"date        {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"cpu         {cpu_model()}; {os.cpu_count()} logical cores ({usable} usable)",
        f"platform    {platform.platform()}",
        f"jax         backend={jax.default_backend()} device={dev.device_kind} ({dev}) x64={jax.config.jax_enable_x64}",
        f"versions    {', '.join(versions)}",
        f"load avg    {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min) at start",
        f"jit cache   {jax.config.jax_compilation_cache_dir or 'persistent cache off: every first call compiles cold'}",
    ]


class compile_seconds:
    """``with compile_seconds() as c: ...`` then ``c.total``: the seconds JAX spent tracing, lowering
    and compiling inside the block, from its own compile-duration events (``jax.monitoring``), so a
    run's compile is measured, not estimated from another run."""

    EVENTS = (
        "/jax/core/compile/jaxpr_trace_duration",
        "/jax/core/compile/jaxpr_to_mlir_module_duration",
        "/jax/core/compile/backend_compile_duration",
    )

    def __init__(self):
        self.total = 0.0

    def _listen(self, event, duration, **_):
        if event in self.EVENTS:
            self.total += duration

    def __enter__(self):
        import jax.monitoring

        jax.monitoring.register_event_duration_secs_listener(self._listen)
        return self

    def __exit__(self, *exc):
        import jax.monitoring

        jax.monitoring.unregister_event_duration_listener(self._listen)
        return False
