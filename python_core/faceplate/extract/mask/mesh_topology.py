"""Region loops of mediapipe's 468-vertex face mesh, and the code that derives them.

The face mesh is a fixed triangulation: vertex ``i`` is the same facial point on every face. The
region maskers need closed vertex loops (polygons) for the face silhouette, the eye openings, the
lips and the brows. The loops below are constants so that drawing a mask needs no graph work;
:func:`derive_region_loops` recomputes them from the mesh's edge list (mediapipe ships it as
``mp.solutions.face_mesh.FACEMESH_TESSELATION``) and ``tests/contract/test_maskers.py`` checks
that the two agree.

How each loop is obtained from the topology:
    * The triangles are the 3-cliques of the edge graph. Edges used by exactly one triangle form
      the mesh boundary, which splits into four closed loops: the outer silhouette (36 vertices,
      the largest; it runs over the forehead through vertex 10 and round the chin through vertex
      152), the inner lip line (20; the mouth is a hole in the mesh) and the two eyelid openings
      (16 each; holes too).
    * The outer lip line is the ring of vertices at graph distance 3 from the inner lip loop
      (three rings of lip vertices: inner, two middle, outer), ordered by walking the mesh edges
      between ring vertices.
    * The brows are not holes, so the topology alone cannot tell them apart. Their vertex indices
      are facts about the mesh (the upper brow line 70-63-105-66-107 and the lower line
      46-53-52-65-55 on the subject's right, mirrored 300-293-334-296-336 / 276-283-282-295-285
      on the left); each brow loop joins its upper line to its reversed lower line, and the test
      checks that every step of the loop is a mesh edge.
    * Which eye is which: the subject's right eye (image left in a frontal, unmirrored image) is
      the hole that contains vertex 33 (its outer corner), as in iBUG's "right eye" 36-41.

Loops are normalised to start at their smallest vertex index and to continue towards the smaller
of its two neighbours.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable

#: Number of vertices of the face mesh without irises (refined meshes add 10 iris points after).
MESH_VERTICES = 468

#: Outer silhouette of the mesh: forehead top (10), temples, jaw, chin (152).
FACE_OVAL: tuple[int, ...] = (
    10, 109, 67, 103, 54, 21, 162, 127, 234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152,
    377, 400, 378, 379, 365, 397, 288, 361, 323, 454, 356, 389, 251, 284, 332, 297, 338,
)
#: Inner lip line (the mouth opening of the mesh).
LIPS_INNER: tuple[int, ...] = (
    13, 82, 81, 80, 191, 78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312,
)
#: Outer lip line (vermilion border).
LIPS_OUTER: tuple[int, ...] = (
    0, 37, 39, 40, 185, 61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267,
)
#: Eyelid opening of the subject's right eye (image left).
RIGHT_EYE: tuple[int, ...] = (
    7, 33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163,
)
#: Eyelid opening of the subject's left eye (image right).
LEFT_EYE: tuple[int, ...] = (
    249, 263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390,
)
#: Subject's right brow: upper line outer → inner, then the lower line inner → outer.
RIGHT_BROW: tuple[int, ...] = (46, 53, 52, 65, 55, 107, 66, 105, 63, 70)
#: Subject's left brow.
LEFT_BROW: tuple[int, ...] = (276, 283, 282, 295, 285, 336, 296, 334, 293, 300)

#: The brow lines the brow loops are built from (facts about the mesh, see the module doc).
BROW_LINES: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "right": ((70, 63, 105, 66, 107), (46, 53, 52, 65, 55)),
    "left": ((300, 293, 334, 296, 336), (276, 283, 282, 295, 285)),
}


def normalise_loop(loop: Iterable[int]) -> tuple[int, ...]:
    """Rotate/reverse a closed loop to start at its smallest index, then its smaller neighbour."""
    seq = list(loop)
    i = seq.index(min(seq))
    seq = seq[i:] + seq[:i]
    if len(seq) > 2 and seq[-1] < seq[1]:
        seq = [seq[0]] + seq[:0:-1]
    return tuple(seq)


def _adjacency(edges: Iterable[tuple[int, int]]) -> dict[int, set[int]]:
    adj: dict[int, set[int]] = collections.defaultdict(set)
    for a, b in edges:
        if a != b:
            adj[a].add(b)
            adj[b].add(a)
    return adj


def _walk(adj: dict[int, set[int]], vertices: set[int]) -> list[tuple[int, ...]]:
    """Split ``vertices`` (each with exactly two neighbours inside the set) into closed loops."""
    loops: list[tuple[int, ...]] = []
    seen: set[int] = set()
    for start in sorted(vertices):
        if start in seen:
            continue
        loop, prev, cur = [start], -1, start
        seen.add(start)
        while True:
            nxt = sorted(n for n in adj[cur] & vertices if n != prev and n not in seen)
            if not nxt:
                break
            prev, cur = cur, nxt[0]
            loop.append(cur)
            seen.add(cur)
        loops.append(normalise_loop(loop))
    return loops


def boundary_loops(edges: Iterable[tuple[int, int]]) -> list[tuple[int, ...]]:
    """Closed boundary loops of a triangulated mesh given as an edge list, longest first."""
    edge_set = {(min(a, b), max(a, b)) for a, b in edges if a != b}
    adj = _adjacency(edge_set)
    uses: collections.Counter[tuple[int, int]] = collections.Counter()
    for a, b in edge_set:
        for c in adj[a] & adj[b]:
            if c > b:  # each triangle once: a < b < c
                for e in ((a, b), (a, c), (b, c)):
                    uses[e] += 1
    bnd = [e for e in edge_set if uses[e] == 1]
    badj = _adjacency(bnd)
    return sorted(_walk(badj, set(badj)), key=lambda lp: (-len(lp), lp))


def ring_loop(edges: Iterable[tuple[int, int]], hole: Iterable[int], k: int) -> tuple[int, ...]:
    """The closed loop of vertices at graph distance ``k`` from the vertices of ``hole``."""
    adj = _adjacency((min(a, b), max(a, b)) for a, b in edges)
    dist = {v: 0 for v in hole}
    queue = collections.deque(dist)
    while queue:
        v = queue.popleft()
        for n in adj[v]:
            if n not in dist:
                dist[n] = dist[v] + 1
                queue.append(n)
    ring = {v for v, d in dist.items() if d == k}
    loops = _walk(adj, ring)
    if len(loops) != 1:
        raise ValueError(f"ring {k} around the hole is not a single loop ({len(loops)} pieces)")
    return loops[0]


def derive_region_loops(edges: Iterable[tuple[int, int]]) -> dict[str, tuple[int, ...]]:
    """Recompute every region loop from the mesh edge list (see the module doc).

    Args:
        edges: Undirected (i, j) vertex pairs of the face-mesh triangulation.

    Returns:
        Loop name → normalised vertex loop, for "face_oval", "lips_inner", "lips_outer",
        "right_eye", "left_eye", "right_brow", "left_brow".
    """
    edge_list = [(int(a), int(b)) for a, b in edges]
    loops = boundary_loops(edge_list)
    if len(loops) != 4:
        raise ValueError(f"expected 4 boundary loops (silhouette, mouth, 2 eyes), got {len(loops)}")
    oval, mouth = loops[0], loops[1]
    eyes = loops[2:]
    right = next(lp for lp in eyes if 33 in lp)
    left = next(lp for lp in eyes if lp is not right)
    out = {
        "face_oval": oval,
        "lips_inner": mouth,
        "lips_outer": ring_loop(edge_list, mouth, 3),
        "right_eye": right,
        "left_eye": left,
    }
    for side, (upper, lower) in BROW_LINES.items():
        out[f"{side}_brow"] = normalise_loop(upper + tuple(reversed(lower)))
    return out
