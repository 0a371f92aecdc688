"""Run a training entry point and record when every optimizer step ends, plus peak RSS.

Usage: python _step_timer.py OUT.json (module NAME | script PATH) ARGS...
Both trainers are measured by the same global optimizer-step hook, so the numbers compare.
"""

from __future__ import annotations

import atexit
import json
import resource
import runpy
import sys
import time

from torch.optim.optimizer import register_optimizer_step_post_hook

out, kind, target, *args = sys.argv[1:]
stamps: list[float] = []
register_optimizer_step_post_hook(lambda opt, a, k: stamps.append(time.perf_counter()))


@atexit.register
def _write() -> None:
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with open(out, "w") as f:
        json.dump({"stamps": stamps, "peak_rss_gib": peak_kib / 2**20}, f)


sys.argv = [target, *args]
if kind == "module":
    runpy.run_module(target, run_name="__main__", alter_sys=True)
else:
    import types
    from pathlib import Path

    import diffusers  # noqa: F401  (import first: they must see torchvision as absent)
    import peft  # noqa: F401
    import transformers  # noqa: F401

    sys.path.insert(0, str(Path(__file__).parent))
    import torchvision_standin

    package = types.ModuleType("torchvision")
    package.transforms = torchvision_standin
    sys.modules["torchvision"], sys.modules["torchvision.transforms"] = package, torchvision_standin
    sys.modules["torchvision.transforms.functional"] = torchvision_standin.functional
    runpy.run_path(target, run_name="__main__")
