// Faceplate Studio: documents, views, status line, global keys and the shortcut list.
import { get } from "./api.js";
import { FacesetView } from "./grid.js";
import { FrameView } from "./frame.js";
import { MaskView } from "./mask.js";

const $ = (s) => document.querySelector(s);

export const studio = {
  docs: null, view: "faceset", faceset: null, store: null, shortcuts: [],
  status(msg, error = false) {
    const el = $("#status");
    el.textContent = msg;
    el.classList.toggle("err", error);
  },
  fail(err) { studio.status(err.message || String(err), true); },
  undoState(counts) {
    $("#undo-state").textContent = counts ? `undo ${counts[0]} · redo ${counts[1]}` : "";
  },
  register(view, rows) { for (const r of rows) studio.shortcuts.push([view, ...r]); },
};

const views = {};

function fillDocs() {
  const sel = $("#doc");
  sel.innerHTML = "";
  const want = studio.view === "faceset" ? "facesets" : "stores";
  for (const d of studio.docs[want]) {
    const o = document.createElement("option");
    o.value = d.id;
    o.textContent = want === "facesets" ? `${d.name} (${d.count})` : d.name;
    sel.append(o);
  }
  const cur = want === "facesets" ? studio.faceset : studio.store;
  if (cur !== null) sel.value = cur;
}

export async function show(view, docId) {
  studio.view = view;
  for (const b of document.querySelectorAll("#views button"))
    b.classList.toggle("on", b.dataset.view === view);
  for (const v of ["faceset", "frames", "masks"]) $(`#view-${v}`).hidden = v !== view;
  if (view === "faceset") {
    if (docId !== undefined) studio.faceset = docId;
    if (studio.faceset === null && studio.docs.facesets.length) studio.faceset = studio.docs.facesets[0].id;
  } else {
    if (docId !== undefined) studio.store = docId;
    if (studio.store === null && studio.docs.stores.length) studio.store = studio.docs.stores[0].id;
  }
  fillDocs();
  try {
    await views[view].open(view === "faceset" ? studio.faceset : studio.store);
  } catch (e) { studio.fail(e); }
}
studio.show = show;

function helpTable() {
  const t = $("#help-table");
  t.innerHTML = "";
  const global = [["1 / 2 / 3", "faceset / frames / masks view"], ["?", "this list"],
                  ["Ctrl+Z / Ctrl+Shift+Z, Ctrl+Y", "undo / redo (the open document; kept across restarts)"]];
  const rows = [["all", ...global[0]], ["all", ...global[1]], ["all", ...global[2]], ...studio.shortcuts];
  let last = null;
  for (const [view, key, what] of rows) {
    if (view !== last) {
      const h = t.insertRow(); const c = h.insertCell(); c.colSpan = 2;
      c.innerHTML = `<b>${view}</b>`; last = view;
    }
    const r = t.insertRow();
    r.insertCell().textContent = key;
    r.insertCell().textContent = what;
  }
}

function toggleHelp(force) {
  const h = $("#help");
  h.hidden = force !== undefined ? !force : !h.hidden;
  if (!h.hidden) helpTable();
}

document.addEventListener("keydown", (e) => {
  if (e.target.matches("input[type=text], input[type=number], select")) return;
  const k = e.key;
  if (k === "?") { toggleHelp(); e.preventDefault(); return; }
  if (k === "Escape" && !$("#help").hidden) { toggleHelp(false); return; }
  if (!e.ctrlKey && !e.metaKey && !e.altKey && ["1", "2", "3"].includes(k)) {
    show({ 1: "faceset", 2: "frames", 3: "masks" }[k]); e.preventDefault(); return;
  }
  const v = views[studio.view];
  if ((e.ctrlKey || e.metaKey) && (k === "z" || k === "Z" || k === "y")) {
    e.preventDefault();
    v.step(!(k === "y" || e.shiftKey)).catch(studio.fail);
    return;
  }
  if (v.key(e)) e.preventDefault();
});

async function main() {
  studio.docs = await get("/api/docs");
  views.faceset = new FacesetView(studio);
  views.frames = new FrameView(studio);
  views.masks = new MaskView(studio, views.frames);
  for (const b of document.querySelectorAll("#views button"))
    b.addEventListener("click", () => show(b.dataset.view));
  $("#doc").addEventListener("change", (e) => show(studio.view, Number(e.target.value)));
  $("#help-btn").addEventListener("click", () => toggleHelp());
  if (studio.docs.problems.length) studio.status(`left out: ${studio.docs.problems.join("; ")}`, true);
  const start = studio.docs.facesets.length ? "faceset" : "frames";
  await show(start);
  document.body.dataset.ready = "1";
}

main().catch((e) => { studio.fail(e); document.body.dataset.ready = "error"; });
