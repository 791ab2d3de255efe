"""One in-process screen measurement in a child Python, with the window made at its size.

The offscreen window keeps the size it was created with, and Kivy reads its setup once per
process: a measurement at the Pi's 800x480 and one at a tablet's 1280x800 cannot share a
process. `run_in_child` starts `python -m bench.screen_child NAME JSON`; the child makes its
window, runs the named function with the arguments and prints the result as one JSON line.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from typing import Any

from bench.fresh_process import REPO, json_from_module

RESULT_MARK = "bench-result: "
# name -> "module:function(width, height, **arguments) -> JSON-able result"
MEASUREMENTS = {
    "screen_scan": "bench.screen_scan:measure_here",
    "screen_frames": "bench.screen_frames:flows_here",
    "update_download": "bench.update_download:scans_here",
}


def run_in_child(
    name: str,
    size: tuple[int, int],
    arguments: dict[str, Any],
    timeout_s: float,
    *,
    extra_env: dict[str, str] | None = None,
) -> Any:
    """The result of measurement `name` run in a child whose window is `size`."""
    payload = json.dumps({"size": list(size), "arguments": arguments})
    env = {**os.environ, **(extra_env or {})}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return json_from_module(
        "bench.screen_child", [name, payload], timeout_s=timeout_s, env=env, mark=RESULT_MARK
    )


def main(argv: list[str]) -> int:
    """In the child: make the window, measure, print the result line."""
    from appliance.settings import ScreenSettings
    from bench import screen_app

    name, payload = argv
    request = json.loads(payload)
    width, height = request["size"]
    screen_app.prepare_offscreen(ScreenSettings(width=width, height=height))
    module_name, _, function_name = MEASUREMENTS[name].partition(":")
    measure = getattr(importlib.import_module(module_name), function_name)
    result = measure(width, height, **request["arguments"])
    print(RESULT_MARK + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
