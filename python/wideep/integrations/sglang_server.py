"""``python -m wideep.integrations.sglang_server <sglang.launch_server arguments>``.

Runs SGLang's server with WideEP's algorithms available to ``--eplb-algorithm`` (``wideep``,
``wideep_deepseek``, ...). The hook is installed at import time on purpose: SGLang's spawned
scheduler processes import this module again as their main module, which installs it there too.
"""

import runpy

from wideep.integrations import sglang as _sglang

_sglang.register()

if __name__ == "__main__":
    # alter_sys=False keeps this module as __main__, so spawned children re-import it (and the hook).
    runpy.run_module("sglang.launch_server", run_name="__main__", alter_sys=False)
