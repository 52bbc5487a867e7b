"""``python -m faceplate.train``: the standalone training script (same options as
``faceplate train``; what ``torchrun`` launches for distributed training)."""

import sys

from faceplate.cli.train import main_standalone

if __name__ == "__main__":
    sys.exit(main_standalone())
