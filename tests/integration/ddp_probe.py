"""A DDP rank of ``python -m faceplate.train`` with a fault or a probe injected, for
tests/integration/test_train.py (launched once per rank with torchrun's environment).

    python tests/integration/ddp_probe.py MODE [faceplate train options...]

MODE:
* ``nan-rank1-at-K``: rank 1's loss is NaN from iteration K on (the other ranks' stay finite);
* ``count-allreduce``: every gradient bucket all-reduce of the DDP module is counted; rank 0
  prints ``allreduce <count>`` at the end;
* ``plain``: nothing injected.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from faceplate.cli.train import main_standalone
from faceplate.train import trainer as tr


def inject(mode: str) -> list[int]:
    calls = [0]
    rank = int(os.environ.get("RANK", "0"))
    if mode.startswith("nan-rank1-at-"):
        at = int(mode.rsplit("-", 1)[1])
        original = tr.Trainer._check_finite

        def check(self: tr.Trainer, total_a: float, total_b: float) -> None:
            if rank == 1 and self.iteration + 1 >= at:
                total_a = float("nan")
            original(self, total_a, total_b)

        tr.Trainer._check_finite = check  # type: ignore[method-assign]
    elif mode == "count-allreduce":
        from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
        from torch.nn.parallel import DistributedDataParallel

        setup = tr.Trainer.setup

        def counted_setup(self: tr.Trainer) -> None:
            setup(self)
            if isinstance(self.step_module, DistributedDataParallel):
                def hook(state, bucket):  # type: ignore[no-untyped-def]
                    calls[0] += 1
                    return default_hooks.allreduce_hook(state, bucket)

                self.step_module.register_comm_hook(None, hook)

        tr.Trainer.setup = counted_setup  # type: ignore[method-assign]
    return calls


if __name__ == "__main__":
    mode, argv = sys.argv[1], sys.argv[2:]
    counted = inject(mode)
    code = main_standalone(argv)
    if mode == "count-allreduce" and int(os.environ.get("RANK", "0")) == 0:
        print(f"allreduce {counted[0]}", flush=True)
    sys.exit(code)
