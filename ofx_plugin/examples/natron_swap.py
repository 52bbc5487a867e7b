# Faceplate Swap in NatronRenderer: Read -> Faceplate Swap -> Write, from the command line.
#
#   FACEPLATE_PLATE=/shots/plate.####.exr FACEPLATE_MODEL=/models/a_b \
#   FACEPLATE_ALIGNMENTS=/shots/plate.fpstore FACEPLATE_OUT=/out/swapped.####.exr \
#   NatronRenderer -w Write1 1001-1100 ofx_plugin/examples/natron_swap.py
#
# FACEPLATE_ALIGNMENTS (optional) is the store `faceplate extract PLATE --alignments STORE`
# wrote (or an Analyze Sequence in the GUI); without it every frame detects its faces. The
# output keeps the plate's size; EXR is written as 32-bit float. Runs inside Natron's own Python
# (`app` is Natron's), so it uses nothing but Natron's API and the environment.
import os

reader = app.createReader(os.environ["FACEPLATE_PLATE"])  # noqa: F821 - Natron's global
swap = app.createNode("org.faceplate.Swap")  # noqa: F821
swap.connectInput(0, reader)
swap.getParam("model").setValue(os.environ["FACEPLATE_MODEL"])
swap.getParam("alignments").setValue(os.environ.get("FACEPLATE_ALIGNMENTS", ""))
writer = app.createWriter(os.environ["FACEPLATE_OUT"])  # noqa: F821
writer.getParam("formatType").setValue(0)  # "input": the plate's own size
if os.environ["FACEPLATE_OUT"].lower().endswith(".exr"):
    depth = writer.getParam("bitDepth")
    depth.setValue([depth.getOption(i) for i in range(depth.getNumOptions())].index("32f"))
writer.connectInput(0, swap)
