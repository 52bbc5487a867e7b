// Faceset view: a virtualised grid of every face (only the rows in view exist in the DOM),
// sort/group through the server's sort keys, filters, selection, trash, tags, near duplicates
// and the pose-coverage chart.
import { get, post } from "./api.js";

const $ = (s) => document.querySelector(s);
const CELL = 96, GAP = 4, ROW = CELL + GAP + 4, HDR = 26;

export class FacesetView {
  constructor(studio) {
    this.studio = studio;
    this.id = null; this.data = null; this.order = null; this.groups = null; this.values = {};
    this.sel = new Set(); this.focus = -1; this.anchor = -1;
    this.display = []; this.rows = []; this.live = new Map();
    this.urls = new Map(); this.want = new Set(); this.inflight = 0;
    this.grid = $("#grid");
    this.grid.addEventListener("scroll", () => { this.lastScroll = performance.now(); this.paint(); });
    new ResizeObserver(() => this.layout()).observe(this.grid);
    for (const id of ["f-yaw-min", "f-yaw-max", "f-pitch-min", "f-pitch-max", "f-size",
                      "f-tag", "f-trash", "f-frames", "f-blur", "f-ident", "bins"])
      $(`#${id}`).addEventListener("change", () => this.refilter().catch(studio.fail));
    $("#sort-key").addEventListener("change", () => this.resort().catch(studio.fail));
    $("#group").addEventListener("change", () => this.resort().catch(studio.fail));
    $("#btn-dups").addEventListener("click", () => this.duplicates().catch(studio.fail));
    $("#btn-cov").addEventListener("click", () => this.coverage(true));
    $("#cov-other").addEventListener("change", () => this.coverage(false));
    this.grid.addEventListener("mousedown", (e) => this.mouseDown(e));
    this.grid.addEventListener("dblclick", (e) => {
      const id = this.cellId(e.target); if (id !== null) this.openFrame(id);
    });
    studio.register("faceset", [
      ["click / Ctrl+click / Shift+click", "select / add to selection / select a range"],
      ["drag on the grid", "box select (Ctrl: add)"],
      ["arrows, PgUp/PgDn, Home/End", "move (Shift: extend the selection)"],
      ["Space", "toggle the face under the cursor"], ["Ctrl+A", "select all shown"],
      ["Delete", "delete the selection to the faceset's trash"],
      ["R", "restore the selection from the trash"], ["T / Shift+T", "tag / untag the selection"],
      ["Enter or double-click", "open the face's frame in the frame view"],
      ["S", "cycle the sort key"], ["G", "group on/off"], ["D", "near-duplicate groups"],
      ["C", "pose coverage chart"], ["Esc", "clear the selection"],
    ]);
  }

  async open(id, message) {
    if (id === null || id === undefined) { this.studio.status("no faceset open"); return; }
    if (this.id !== id) {
      this.id = id; this.sel.clear(); this.focus = -1; this.order = null; this.groups = null;
      this.values = {}; this.grid.scrollTop = 0;
      for (const u of this.urls.values()) URL.revokeObjectURL(u);
      this.urls.clear(); this.want.clear();
    }
    const t0 = performance.now();
    this.data = await get(`/api/faceset/${id}`);
    const sk = $("#sort-key");
    if (sk.options.length <= 1) for (const k of this.data.sort_keys) sk.add(new Option(k, k));
    const other = $("#cov-other");
    other.innerHTML = '<option value="">—</option>';
    for (const f of this.studio.docs.facesets) if (f.id !== id) other.add(new Option(f.name, f.id));
    this.studio.undoState(this.data.undo);
    if ($("#sort-key").value || $("#group").checked) await this.resort();
    else await this.refilter();
    if (this.data.bad.length)
      this.studio.status(`${this.data.bad.length} file(s) are not readable faces: ` +
        this.data.bad.slice(0, 3).map(([n, w]) => `${n} (${w})`).join("; "), true);
    else this.studio.status(message || `${this.data.count} faces · ${(performance.now() - t0).toFixed(0)} ms`);
    if (!$("#coverage").hidden) this.coverage(false);
    this.grid.focus();
  }

  col(name) { return this.data.columns[name]; }

  async resort() {
    const key = $("#sort-key").value;
    const group = $("#group").checked;
    this.order = null; this.groups = null;
    if (key) {
      this.studio.status(`sorting by ${key}…`);
      const r = await post(`/api/faceset/${this.id}/sort`, { key, group, bins: Number($("#bins").value) || 5 });
      this.order = r.order; this.groups = r.groups || null;
      if (r.values) this.values[key] = r.values;
      this.studio.status(`sorted by ${key}${group ? ", grouped" : ""}`);
    } else if (group) {
      this.studio.status("choose a sort key to group by", true);
    }
    await this.refilter();
  }

  async needValues(key) {
    if (this.values[key]) return this.values[key];
    const r = await post(`/api/faceset/${this.id}/sort`, { key, group: key === "identity" });
    if (key === "identity") {
      const lab = new Array(this.data.count).fill(null);
      r.groups.forEach((g, c) => g.ids.forEach((i) => { lab[i] = c; }));
      this.values[key] = lab;
      const sel = $("#f-ident");
      const keep = sel.value;
      sel.innerHTML = '<option value="">any</option>';
      r.groups.forEach((g, c) => sel.add(new Option(`person ${c} (${g.ids.length})`, String(c))));
      sel.value = keep;
    } else this.values[key] = r.values;
    return this.values[key];
  }

  async refilter() {
    const num = (id, d) => { const v = parseFloat($(`#${id}`).value); return Number.isFinite(v) ? v : d; };
    const yaw = [num("f-yaw-min", -180), num("f-yaw-max", 180)];
    const pitch = [num("f-pitch-min", -180), num("f-pitch-max", 180)];
    const minSize = num("f-size", 0), tag = $("#f-tag").value.trim(), trash = $("#f-trash").checked;
    const frames = $("#f-frames").value;
    const blurMin = num("f-blur", null);
    const ident = $("#f-ident").value;
    const blur = blurMin !== null ? await this.needValues("blur") : null;
    const idv = ident !== "" ? await this.needValues("identity") : null;
    const c = this.data.columns;
    const ok = (i) => c.trashed[i] === trash && c.yaw[i] >= yaw[0] && c.yaw[i] <= yaw[1] &&
      c.pitch[i] >= pitch[0] && c.pitch[i] <= pitch[1] && c.size[i] >= minSize &&
      (!tag || c.tags[i].includes(tag)) &&
      (frames !== "multi" || c.faces_in_frame[i] > 1) &&
      (frames !== "single" || c.faces_in_frame[i] === 1) &&
      (blur === null || (blur[i] !== null && blur[i] >= blurMin)) &&
      (idv === null || String(idv[i]) === ident);
    const base = this.order || [...Array(this.data.count).keys()];
    const sections = this.groups
      ? this.groups.map((g) => { const s = new Set(g.ids); return [g.name, base.filter((i) => s.has(i))]; })
      : [[null, base]];
    this.sections = sections.map(([n, ids]) => [n, ids.filter(ok)]).filter(([n, ids]) => ids.length || n === null);
    this.display = this.sections.flatMap(([, ids]) => ids);
    this.pos = new Map(this.display.map((id, k) => [id, k]));
    for (const s of [...this.sel]) if (!this.pos.has(s)) this.sel.delete(s);
    $("#grid-count").textContent = `${this.display.length} shown · ${this.sel.size} selected`;
    this.layout();
    document.body.dataset.gridVersion = String((Number(document.body.dataset.gridVersion) || 0) + 1);
  }

  layout() {
    if (!this.data) return;
    const w = this.grid.clientWidth - 8;
    this.cols = Math.max(1, Math.floor((w + GAP) / (CELL + GAP + 4)));
    this.rows = []; let y = 0;
    for (const [name, ids] of this.sections || []) {
      if (name !== null) { this.rows.push({ y, h: HDR, header: `${name} — ${ids.length}` }); y += HDR; }
      for (let k = 0; k < ids.length; k += this.cols) {
        this.rows.push({ y, h: ROW, ids: ids.slice(k, k + this.cols) }); y += ROW;
      }
    }
    $("#grid-space").style.height = `${y + 8}px`;
    for (const el of this.live.values()) el.remove();
    this.live.clear();
    this.paint();
  }

  visibleRange(extra = 2) {
    const top = this.grid.scrollTop, bottom = top + this.grid.clientHeight;
    let lo = 0, hi = this.rows.length;
    while (lo < hi) { const m = (lo + hi) >> 1; if (this.rows[m].y + this.rows[m].h < top) lo = m + 1; else hi = m; }
    let end = lo;
    while (end < this.rows.length && this.rows[end].y < bottom) end++;
    return [Math.max(0, lo - extra), Math.min(this.rows.length, end + extra)];
  }

  paint() {
    const [a, b] = this.visibleRange();
    const holder = $("#grid-rows");
    for (const [k, el] of this.live) if (k < a || k >= b) { el.remove(); this.live.delete(k); }
    for (let k = a; k < b; k++) {
      if (this.live.has(k)) continue;
      const r = this.rows[k];
      const el = document.createElement("div");
      el.style.top = `${r.y + 4}px`;
      if (r.header) { el.className = "ghdr"; el.textContent = r.header; }
      else {
        el.className = "row";
        for (const id of r.ids) el.append(this.cell(id));
      }
      holder.append(el);
      this.live.set(k, el);
    }
    this.fetchThumbs();
  }

  // Thumbnails come in batches (one request per screenful, as blob URLs), not one request
  // per face: a browser opens 6 connections per host, and each request costs a round trip.
  fetchThumbs() {
    if (!this.want.size || this.inflight) return;
    // one batch at a time, at most every 120 ms, of the faces in view now: while the grid
    // flies past, the server and the browser are not kept busy with rows already gone
    const wait = 120 - (performance.now() - (this.lastFetch || 0));
    if (wait > 0) {
      if (!this.fetchTimer) this.fetchTimer = setTimeout(() => { this.fetchTimer = null; this.fetchThumbs(); }, wait);
      return;
    }
    const [a, b] = this.visibleRange(0);
    const inView = new Set();
    for (let k = a; k < b; k++) if (this.rows[k] && this.rows[k].ids) for (const id of this.rows[k].ids) inView.add(id);
    let ids = [...this.want].filter((i) => inView.has(i));
    if (!ids.length) ids = [...this.want];  // the rows just outside the view, when idle
    ids = ids.slice(0, 160);
    for (const i of ids) this.want.delete(i);
    this.inflight++;
    this.lastFetch = performance.now();
    const fid = this.id;
    fetch(`/api/faceset/${fid}/thumbs?ids=${ids.join(",")}`).then(async (r) => {
      if (!r.ok) throw new Error((await r.json()).error);
      const sizes = r.headers.get("X-Thumb-Sizes").split(",").map(Number);
      const buf = await r.arrayBuffer();
      if (fid !== this.id) return;
      let at = 0;
      ids.forEach((id, k) => {
        const n = sizes[k];
        if (n) this.urls.set(id, URL.createObjectURL(new Blob([buf.slice(at, at + n)], { type: "image/jpeg" })));
        else this.urls.set(id, `/api/faceset/${fid}/thumb/${id}`);  // shows as broken; the URL says why
        at += n;
      });
      while (this.urls.size > 6000) {  // keep memory bounded on huge facesets
        const [old, u] = this.urls.entries().next().value;
        if (u.startsWith("blob:")) URL.revokeObjectURL(u);
        this.urls.delete(old);
      }
      const todo = [];
      for (const el of this.live.values()) for (const img of el.querySelectorAll("img:not([src])")) todo.push(img);
      const apply = () => {  // a few per frame: no long task while the user scrolls on
        for (const img of todo.splice(0, 48)) {
          const u = this.urls.get(Number(img.parentElement.dataset.id));
          if (u && !img.getAttribute("src")) img.src = u;
        }
        if (todo.length) requestAnimationFrame(apply);
      };
      apply();
    }).catch((e) => this.studio.fail(e)).finally(() => {
      this.inflight--;
      const live = new Set();  // ids scrolled away meanwhile are not fetched
      for (const el of this.live.values()) for (const img of el.querySelectorAll("img:not([src])")) live.add(Number(img.parentElement.dataset.id));
      this.want = new Set([...live].filter((i) => !this.urls.has(i)));
      this.fetchThumbs();
    });
  }

  cell(id) {
    const d = document.createElement("div");
    d.className = "cell"; d.dataset.id = id;
    if (this.sel.has(id)) d.classList.add("sel");
    if (this.display[this.focus] === id) d.classList.add("focus");
    if (this.data.columns.trashed[id]) d.classList.add("trashed");
    const img = document.createElement("img");
    img.decoding = "async"; img.draggable = false;  // rows are virtualised: no lazy loading
    // A screen that opens or settles gets its thumbnails in one batch; while the grid is
    // flying, each cell asks for its own (they trickle in without long tasks, and the
    // browser drops the requests of rows that leave the DOM).
    const url = this.urls.get(id);
    if (url) img.src = url;
    else if (performance.now() - (this.lastScroll || 0) < 150) img.src = `/api/faceset/${this.id}/thumb/${id}`;
    else this.want.add(id);
    const c = this.data.columns;
    img.title = `${c.name[id]}\nframe ${c.frame[id]} face ${c.face[id]} · yaw ${c.yaw[id]} pitch ${c.pitch[id]} · size ${c.size[id]}`;
    d.append(img);
    if (c.tags[id].length) { const t = document.createElement("span"); t.className = "tag"; t.textContent = c.tags[id].join(" "); d.append(t); }
    return d;
  }

  restyle() {
    for (const el of this.grid.querySelectorAll(".cell")) {
      const id = Number(el.dataset.id);
      el.classList.toggle("sel", this.sel.has(id));
      el.classList.toggle("focus", this.display[this.focus] === id);
    }
    $("#grid-count").textContent = `${this.display.length} shown · ${this.sel.size} selected`;
  }

  cellId(t) { const c = t.closest && t.closest(".cell"); return c ? Number(c.dataset.id) : null; }

  mouseDown(e) {
    if (e.button !== 0) return;
    this.grid.focus();
    const id = this.cellId(e.target);
    if (id !== null) {
      const k = this.pos.get(id);
      if (e.shiftKey && this.anchor >= 0) {
        if (!e.ctrlKey) this.sel.clear();
        const [lo, hi] = [Math.min(this.anchor, k), Math.max(this.anchor, k)];
        for (let j = lo; j <= hi; j++) this.sel.add(this.display[j]);
      } else if (e.ctrlKey || e.metaKey) {
        this.sel.has(id) ? this.sel.delete(id) : this.sel.add(id); this.anchor = k;
      } else { this.sel.clear(); this.sel.add(id); this.anchor = k; }
      this.focus = k;
      this.restyle();
      return;
    }
    // box select
    const rect = this.grid.getBoundingClientRect();
    const x0 = e.clientX - rect.left, y0 = e.clientY - rect.top + this.grid.scrollTop;
    const rub = $("#rubber");
    const keep = (e.ctrlKey || e.metaKey) ? new Set(this.sel) : new Set();
    const move = (ev) => {
      const x1 = ev.clientX - rect.left, y1 = ev.clientY - rect.top + this.grid.scrollTop;
      const [l, t, r, b] = [Math.min(x0, x1), Math.min(y0, y1), Math.max(x0, x1), Math.max(y0, y1)];
      Object.assign(rub.style, { display: "block", left: `${l}px`, top: `${t}px`, width: `${r - l}px`, height: `${b - t}px` });
      this.sel = new Set(keep);
      for (const row of this.rows) {
        if (!row.ids || row.y + ROW < t || row.y > b) continue;
        row.ids.forEach((cid, j) => {
          const cx = 4 + j * (CELL + GAP + 4);
          if (cx + CELL >= l && cx <= r) this.sel.add(cid);
        });
      }
      this.restyle();
    };
    const up = () => { rub.style.display = "none"; removeEventListener("mousemove", move); removeEventListener("mouseup", up); };
    addEventListener("mousemove", move); addEventListener("mouseup", up);
  }

  moveFocus(to, extend) {
    if (!this.display.length) return;
    to = Math.max(0, Math.min(this.display.length - 1, to));
    if (extend) {
      if (this.anchor < 0) this.anchor = Math.max(this.focus, 0);
      this.sel.clear();
      const [lo, hi] = [Math.min(this.anchor, to), Math.max(this.anchor, to)];
      for (let j = lo; j <= hi; j++) this.sel.add(this.display[j]);
    } else { this.anchor = to; }
    this.focus = to;
    this.scrollTo(this.display[to]);
    this.restyle();
  }

  scrollTo(id) {
    const row = this.rows.find((r) => r.ids && r.ids.includes(id));
    if (!row) return;
    const g = this.grid;
    if (row.y < g.scrollTop) g.scrollTop = row.y;
    else if (row.y + ROW > g.scrollTop + g.clientHeight) g.scrollTop = row.y + ROW - g.clientHeight;
    this.paint();
  }

  selectedOrFocus() {
    if (this.sel.size) return [...this.sel];
    return this.focus >= 0 ? [this.display[this.focus]] : [];
  }

  async trash(restore) {
    const ids = this.selectedOrFocus();
    if (!ids.length) return;
    const r = await post(`/api/faceset/${this.id}/${restore ? "restore" : "trash"}`, { ids });
    this.sel.clear();
    await this.open(this.id, `${restore ? "restored" : "deleted to the trash"}: ${r.moved} face(s)`);
  }

  async tag(on) {
    const ids = this.selectedOrFocus();
    if (!ids.length) return;
    const tag = prompt(on ? "Tag the selected faces with:" : "Remove the tag:", "");
    if (!tag) return;
    const r = await post(`/api/faceset/${this.id}/tag`, { ids, tag, on });
    await this.open(this.id, `${on ? "tagged" : "untagged"} ${r.changed} face(s)`);
  }

  async step(undo) {
    const r = await post(`/api/faceset/${this.id}/${undo ? "undo" : "redo"}`);
    await this.open(this.id, r.label ? `${undo ? "undone" : "redone"}: ${r.label}` : `nothing to ${undo ? "undo" : "redo"}`);
  }

  async duplicates() {
    this.studio.status("finding near duplicates…");
    const r = await get(`/api/faceset/${this.id}/duplicates`);
    $("#sort-key").value = ""; $("#group").checked = false;
    this.order = r.groups.flat();
    this.groups = r.groups.map((g, k) => ({ name: `near duplicates ${k + 1}`, ids: g }));
    await this.refilter();
    this.studio.status(`${r.groups.length} near-duplicate group(s)`);
  }

  openFrame(id) {
    const c = this.data.columns;
    if (c.store[id] === null || c.store[id] === undefined) {
      this.studio.status("this face's alignments store is not open in the Studio", true); return;
    }
    this.studio.pendingFrame = { frame: c.frame[id], face: c.face[id] };
    this.studio.show("frames", c.store[id]);
  }

  async coverage(toggle) {
    const box = $("#coverage");
    if (toggle) box.hidden = !box.hidden;
    if (box.hidden) return;
    const charts = $("#cov-charts");
    charts.innerHTML = "";
    const otherId = $("#cov-other").value;
    const other = otherId !== "" ? await get(`/api/faceset/${otherId}`) : null;
    const bins = (d) => {
      const h = new Map();
      d.columns.yaw.forEach((y, i) => {
        if (d.columns.trashed[i]) return;
        const k = `${Math.floor(Math.max(-90, Math.min(89.9, y)) / 10)},${Math.floor(Math.max(-60, Math.min(59.9, d.columns.pitch[i])) / 10)}`;
        h.set(k, (h.get(k) || 0) + 1);
      });
      return h;
    };
    const mine = bins(this.data), theirs = other ? bins(other) : null;
    const draw = (title, h, ref) => {
      const fig = document.createElement("figure");
      const cv = document.createElement("canvas");
      const cw = 14, ch = 14, W = 18 * cw + 30, H = 12 * ch + 20;
      cv.width = W; cv.height = H;
      const g = cv.getContext("2d");
      g.fillStyle = "#101114"; g.fillRect(0, 0, W, H);
      const max = Math.max(1, ...h.values());
      for (let yi = -9; yi < 9; yi++) for (let pi = -6; pi < 6; pi++) {
        const n = h.get(`${yi},${pi}`) || 0;
        const x = 30 + (yi + 9) * cw, y = (5 - pi) * ch;
        if (n) { g.fillStyle = `rgba(224,160,64,${0.15 + 0.85 * Math.sqrt(n / max)})`; g.fillRect(x, y, cw - 1, ch - 1); }
        if (ref && !n && ref.get(`${yi},${pi}`)) { g.strokeStyle = "#e5534b"; g.strokeRect(x + 0.5, y + 0.5, cw - 2, ch - 2); }
      }
      g.fillStyle = "#7b818b"; g.font = "9px sans-serif";
      g.fillText("-90", 30, H - 4); g.fillText("yaw", 30 + 8 * cw, H - 4); g.fillText("+90", W - 18, H - 4);
      g.fillText("+60", 2, 9); g.fillText("-60", 2, 12 * ch);
      const cap = document.createElement("figcaption"); cap.textContent = title;
      fig.append(cv, cap); charts.append(fig);
    };
    draw(`${this.data.name}: ${[...mine.values()].reduce((a, b) => a + b, 0)} faces, ${mine.size} cells`, mine, theirs);
    if (other) draw(`${other.name} (compare)`, theirs, mine);
  }

  key(e) {
    const k = e.key, cols = this.cols || 1;
    const page = Math.max(1, Math.floor(this.grid.clientHeight / ROW)) * cols;
    const moves = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: cols, ArrowUp: -cols, PageDown: page, PageUp: -page };
    if (k in moves) { this.moveFocus((this.focus < 0 ? 0 : this.focus + moves[k]), e.shiftKey); return true; }
    if (k === "Home") { this.moveFocus(0, e.shiftKey); return true; }
    if (k === "End") { this.moveFocus(this.display.length - 1, e.shiftKey); return true; }
    if (k === " ") {
      const id = this.display[this.focus]; if (id === undefined) return true;
      this.sel.has(id) ? this.sel.delete(id) : this.sel.add(id); this.restyle(); return true;
    }
    if ((e.ctrlKey || e.metaKey) && (k === "a" || k === "A")) { this.sel = new Set(this.display); this.restyle(); return true; }
    if (k === "Escape") { this.sel.clear(); this.restyle(); return true; }
    if (k === "Delete" || k === "Backspace") { this.trash(false).catch(this.studio.fail); return true; }
    if (k === "r" || k === "R") { this.trash(true).catch(this.studio.fail); return true; }
    if (k === "t" || k === "T") { this.tag(!e.shiftKey).catch(this.studio.fail); return true; }
    if (k === "Enter") { const id = this.display[this.focus]; if (id !== undefined) this.openFrame(id); return true; }
    if (k === "d" || k === "D") { this.duplicates().catch(this.studio.fail); return true; }
    if (k === "c" || k === "C") { this.coverage(true); return true; }
    if (k === "g" || k === "G") { $("#group").checked = !$("#group").checked; this.resort().catch(this.studio.fail); return true; }
    if (k === "s" || k === "S") {
      const s = $("#sort-key"); s.selectedIndex = (s.selectedIndex + 1) % s.options.length;
      this.resort().catch(this.studio.fail); return true;
    }
    return false;
  }
}
