"""The Studio page in headless Chromium (Debian's package) driven by Playwright, against the real
server and a real store; screenshots go to build/test-artifacts/studio/."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from faceplate.io.store import AlignmentsStore
from tests.store_fixtures import Built
from tests.studio.conftest import ARTIFACTS, Running


@pytest.fixture()
def page(browser: Any, studio: Running) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(studio.server.url)
    pg.wait_for_selector("body[data-ready='1']", timeout=30_000)
    yield pg
    ctx.close()
    assert not errors, errors


def shot_png(pg: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def status_has(pg: Any, text: str) -> None:
    pg.wait_for_function("t => document.querySelector('#status').textContent.includes(t)",
                         arg=text, timeout=30_000)


def to_screen(pg: Any, canvas: str, frame_w: int, frame_h: int,
              pts: np.ndarray) -> np.ndarray:
    """Frame pixels → page pixels for a canvas that fits the frame (the page's fit mode)."""
    box = pg.locator(canvas).bounding_box()
    s = min(box["width"] / frame_w, box["height"] / frame_h)
    ox = box["x"] + (box["width"] - frame_w * s) / 2
    oy = box["y"] + (box["height"] - frame_h * s) / 2
    return np.asarray(pts, np.float64) * s + [ox, oy]


def open_frame(pg: Any, studio: Running, frame: int) -> dict[str, Any]:
    pg.keyboard.press("2")
    pg.wait_for_selector("body[data-frame-shown]", timeout=30_000)
    for _ in range(frame):
        pg.keyboard.press("ArrowRight")
    pg.wait_for_selector(f"body[data-frame-shown='{frame}']", timeout=30_000)
    return studio.get(f"/api/store/0/frame/{frame}")[1]


def test_sort_by_yaw_select_delete_three_and_undo(page: Any, studio: Running,
                                                  shot: Built) -> None:
    pg = page
    pg.select_option("#sort-key", "yaw")
    status_has(pg, "sorted by yaw")
    order = studio.post("/api/faceset/0/sort", {"key": "yaw"})[1]["order"]
    shown = [int(i) for i in pg.eval_on_selector_all(".cell", "els => els.map(e => e.dataset.id)")]
    assert shown == order
    cells = pg.locator(".cell")
    cells.nth(0).click()
    cells.nth(2).click(modifiers=["Shift"])
    assert pg.locator(".cell.sel").count() == 3
    shot_png(pg, "faceset_selected")
    pg.keyboard.press("Delete")
    status_has(pg, "deleted to the trash: 3 face(s)")
    trashed = sorted(p.name for p in (shot.faces / ".trash").glob("*.png"))
    assert len(trashed) == 3
    assert pg.locator(".cell").count() == shot.n_faces - 3
    pg.keyboard.press("Control+z")
    status_has(pg, "undone: delete 3 face(s)")
    assert not list((shot.faces / ".trash").glob("*.png"))
    pg.wait_for_function(f"document.querySelectorAll('.cell').length === {shot.n_faces}")
    shot_png(pg, "faceset")


def test_drag_a_landmark_and_the_store_changes(page: Any, studio: Running,
                                               shot: Built) -> None:
    pg = page
    fr = open_frame(pg, studio, 2)
    lm = np.asarray(fr["faces"][0]["landmarks"])
    (sx, sy), = to_screen(pg, "#frame-canvas", fr["width"], fr["height"], lm[[57]])
    pg.mouse.move(sx, sy)
    pg.mouse.down()
    pg.mouse.move(sx + 12, sy + 9, steps=6)
    pg.mouse.up()
    status_has(pg, "moved 1 landmark(s) of face 0")
    box = pg.locator("#frame-canvas").bounding_box()
    s = min(box["width"] / fr["width"], box["height"] / fr["height"])
    with AlignmentsStore.open(shot.store, readonly=True) as st:
        new = np.asarray(st.get_face(2, 0).landmarks, np.float64)
        assert st.pinned_faces() == {(2, 0)}
    np.testing.assert_allclose(new[57] - lm[57], [12 / s, 9 / s], atol=1.5 / s + 0.01)
    np.testing.assert_allclose(np.delete(new, 57, 0), np.delete(lm, 57, 0), atol=2e-3)
    shot_png(pg, "frames_landmark_moved")


def test_add_a_missing_face_by_drawing_a_box(page: Any, studio: Running, shot: Built) -> None:
    pg = page
    fr = open_frame(pg, studio, 4)
    x, y, w, h = fr["faces"][0]["bbox"]
    (x0, y0), (x1, y1) = to_screen(pg, "#frame-canvas", fr["width"], fr["height"],
                                   [[x, y], [x + w, y + h]])
    pg.keyboard.press("b")
    pg.mouse.move(x0, y0)
    pg.mouse.down()
    pg.mouse.move(x1, y1, steps=8)
    pg.mouse.up()
    status_has(pg, "added face 1")
    with AlignmentsStore.open(shot.store, readonly=True) as st:
        faces = st.faces(4)
    assert len(faces) == 2
    assert np.linalg.norm(faces[1].landmarks - faces[0].landmarks, axis=1).mean() < 0.08 * w
    shot_png(pg, "frames_face_added")


def test_draw_an_exclude_polygon(page: Any, studio: Running, shot: Built) -> None:
    pg = page
    open_frame(pg, studio, 1)
    pg.keyboard.press("3")
    pg.wait_for_selector("body[data-mask-shown='1:0']", timeout=30_000)
    pg.keyboard.press("o")
    box = pg.locator("#mask-canvas").bounding_box()
    side = min(box["width"], box["height"])
    ox, oy = box["x"] + (box["width"] - side) / 2, box["y"] + (box["height"] - side) / 2
    for fx, fy in ((0.3, 0.6), (0.7, 0.6), (0.7, 0.8), (0.3, 0.8)):
        pg.mouse.click(ox + fx * side, oy + fy * side)
    pg.keyboard.press("Enter")
    status_has(pg, "mask labels saved (frame 1 face 0)")
    with AlignmentsStore.open(shot.store, readonly=True) as st:
        (pinned, labels), = st.notes().values()
    (poly,) = labels["shapes"]
    assert poly["kind"] == "polygon" and poly["mode"] == "exclude" and len(poly["points"]) == 4
    np.testing.assert_allclose(poly["points"][0], [0.3 * 512, 0.6 * 512], atol=3)
    shot_png(pg, "masks_exclude_polygon")


def test_keyboard_navigation(page: Any, studio: Running, shot: Built) -> None:
    pg = page
    pg.locator("#grid").focus()
    pg.keyboard.press("ArrowRight")
    pg.keyboard.press("ArrowRight")
    pg.keyboard.press("Space")
    pg.keyboard.press("Shift+ArrowRight")
    assert pg.locator(".cell.sel").count() == 2
    focused = int(pg.locator(".cell.focus").get_attribute("data-id"))
    fs = studio.get("/api/faceset/0")[1]
    frame = fs["columns"]["frame"][focused]
    pg.keyboard.press("Enter")  # the focused face's frame
    pg.wait_for_selector(f"body[data-frame-shown='{frame}']", timeout=30_000)
    pg.keyboard.press("ArrowRight")
    pg.wait_for_selector(f"body[data-frame-shown='{frame + 1}']", timeout=30_000)
    pg.keyboard.press("End")
    pg.wait_for_selector(f"body[data-frame-shown='{shot.frames - 1}']", timeout=30_000)
    pg.keyboard.press("?")
    assert pg.locator("#help-table tr").count() > 30
    shot_png(pg, "shortcuts")
    pg.keyboard.press("Escape")
    pg.keyboard.press("1")
    pg.wait_for_selector("#view-faceset:not([hidden])")


def test_choose_the_occlusion_mask_to_outline(browser: Any, occluded_shot: Built) -> None:
    """The Frames view lists the masks the store keeps (``occlusion`` from ``faceplate mask
    apply`` among them) and outlines the chosen one."""
    run = Running([occluded_shot.store.parent])
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        pg = ctx.new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(run.server.url)
        pg.wait_for_selector("body[data-ready='1']", timeout=30_000)
        open_frame(pg, run, 1)
        names = pg.eval_on_selector_all("#mask-name option", "os => os.map(o => o.value)")
        assert names == ["components", "extended", "occlusion"]
        pg.wait_for_selector("body[data-mask-outlined^='1:extended:']", timeout=30_000)
        pg.select_option("#mask-name", "occlusion")
        pg.wait_for_selector("body[data-mask-outlined^='1:occlusion:']", timeout=30_000)
        n = int(pg.get_attribute("body", "data-mask-outlined").split(":")[2])
        want = len(run.get("/api/store/0/frame/1")[1]["faces"][0]["mask_outlines"]["occlusion"])
        assert n == want > 0
        pg.keyboard.press("ArrowRight")       # the choice stays from frame to frame
        pg.wait_for_selector("body[data-mask-outlined^='2:occlusion:']", timeout=30_000)
        shot_png(pg, "frames_occlusion_outline")
        assert not errors, errors
    finally:
        ctx.close()
        run.close()
