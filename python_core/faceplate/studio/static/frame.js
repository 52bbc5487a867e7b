// Frame view: scrub a clip with a timeline that marks problem frames; the frame with boxes,
// the 68 landmarks and the mask outline; drag a point or a group (move, Shift: rotate,
// Alt: scale); draw a box to add a face; re-align, delete, copy from a neighbour, choose the
// person of the shot. Every change goes to the store (one undoable step each).
import { get, post } from "./api.js";

const $ = (s) => document.querySelector(s);
const LINES = [[0, 17, false], [17, 22, false], [22, 27, false], [27, 31, false], [31, 36, false],
               [36, 42, true], [42, 48, true], [48, 60, true], [60, 68, true]];

export class FrameView {
  constructor(studio) {
    this.studio = studio;
    this.sid = null; this.info = null; this.pos = 0; this.frame = null; this.img = null;
    this.sel = 0; this.mode = "edit"; this.view = { s: 1, x: 0, y: 0, fit: true };
    this.cv = $("#frame-canvas"); this.g = this.cv.getContext("2d");
    this.tl = $("#timeline"); this.tg = this.tl.getContext("2d");
    this.cache = new Map();
    new ResizeObserver(() => { this.fitCanvas(); this.draw(); this.drawTimeline(); }).observe($("#frame-wrap"));
    this.cv.addEventListener("mousedown", (e) => this.mouseDown(e));
    this.cv.addEventListener("wheel", (e) => this.wheel(e), { passive: false });
    this.cv.addEventListener("contextmenu", (e) => e.preventDefault());
    this.tl.addEventListener("mousedown", (e) => this.scrub(e));
    $("#btn-box").addEventListener("click", () => this.setMode(this.mode === "box" ? "edit" : "box"));
    $("#btn-realign").addEventListener("click", () => this.act("realign"));
    $("#btn-delface").addEventListener("click", () => this.act("delete"));
    $("#btn-keep").addEventListener("click", () => this.act("keep"));
    $("#btn-prevcopy").addEventListener("click", () => this.copyFrom(-1));
    $("#btn-nextcopy").addEventListener("click", () => this.copyFrom(1));
    $("#show-mask").addEventListener("change", () => this.draw());
    $("#mask-name").addEventListener("change", () => this.draw());
    studio.register("frames", [
      ["← / →", "previous / next frame (Shift: 10 frames)"], ["Home / End", "first / last frame"],
      ["N / Shift+N", "next / previous flagged frame (no face, several, low score, jump)"],
      ["Tab", "select the next face"], ["drag a point", "move it (or its group)"],
      ["G", "cycle the landmark group: point, jaw, brows, eyes, nose, mouth, whole face"],
      ["Shift+drag / Alt+drag", "rotate / scale the group about its centre"],
      ["B, then drag", "draw a box: the aligner fits a new face in it"],
      ["A", "re-align the selected face from its box"], ["Delete", "delete the selected face"],
      ["[ / ]", "copy the selected face's place from the previous / next frame"],
      ["K", "this face is the person of the shot: remove the others in this frame"],
      ["L", "label this face's mask (mask view)"], ["M", "show / hide the mask outline"],
      ["wheel / right-drag / 0", "zoom / pan / fit"],
    ]);
  }

  async open(sid) {
    if (sid === null || sid === undefined) { this.studio.status("no alignments store open"); return; }
    if (sid !== this.sid) { this.sid = sid; this.pos = 0; this.cache.clear(); this.view.fit = true; }
    await this.refreshInfo();
    const want = this.studio.pendingFrame;
    this.studio.pendingFrame = null;
    if (want) {
      const k = this.info.timeline.findIndex((t) => t[0] === want.frame);
      if (k >= 0) this.pos = k;
    }
    this.fitCanvas();
    await this.goto(this.pos, want ? want.face : undefined);
    const i = this.info;
    this.studio.status(`${i.name}: ${i.frames} frames, ${i.faces} faces, ${i.labelled} labelled`);
    this.cv.focus();
  }

  async refreshInfo() {
    this.info = await get(`/api/store/${this.sid}`);
    this.studio.undoState(this.info.undo);
    this.drawTimeline();
  }

  get fi() { return this.info && this.info.timeline.length ? this.info.timeline[this.pos][0] : null; }

  loadImage(fi) {
    if (this.cache.has(fi)) return this.cache.get(fi);
    const p = new Promise((res, rej) => {
      const im = new Image();
      im.onload = () => res(im);
      im.onerror = () => rej(new Error(`frame ${fi} could not be decoded (see the server's message: open the image URL)`));
      im.src = `/api/store/${this.sid}/frame/${fi}/image`;
    });
    p.catch(() => this.cache.delete(fi));
    this.cache.set(fi, p);
    if (this.cache.size > 24) this.cache.delete(this.cache.keys().next().value);
    return p;
  }

  async goto(pos, face) {
    if (!this.info.timeline.length) { this.studio.status("this store has no frames"); return; }
    this.pos = Math.max(0, Math.min(this.info.timeline.length - 1, pos));
    const fi = this.fi;
    const t0 = performance.now();
    const faces = get(`/api/store/${this.sid}/frame/${fi}`);
    let img = null, err = null;
    try { img = await this.loadImage(fi); } catch (e) { err = e; }
    const data = await faces;
    if (this.fi !== fi) return;  // a later seek won
    this.frame = data; this.img = img;
    this.maskChoices();
    if (face !== undefined) this.sel = Math.max(0, data.faces.findIndex((f) => f.face === face));
    if (this.sel >= data.faces.length) this.sel = 0;
    this.draw(); this.drawTimeline();
    const ms = performance.now() - t0;
    document.body.dataset.frameShown = String(fi);
    document.body.dataset.frameMs = ms.toFixed(1);
    $("#frame-label").textContent = `frame ${data.frame_number} (${data.name}) · ${this.pos + 1}/${this.info.timeline.length}`;
    this.faceInfo();
    if (err) this.studio.fail(err);
    // prefetch the neighbours so scrubbing stays quick
    for (const d of [1, -1]) {
      const t = this.info.timeline[this.pos + d];
      if (t) this.loadImage(t[0]).catch(() => {});
    }
  }

  faceInfo() {
    const f = this.face();
    $("#face-info").textContent = f ? `face ${f.face} · ${f.detector}/${f.aligner} · score ${f.score} · yaw ${f.yaw} pitch ${f.pitch} roll ${f.roll}${f.pinned ? " · edited (pinned)" : ""}${f.labels ? " · labelled" : ""}` : "no face in this frame";
  }

  face() { return this.frame && this.frame.faces[this.sel]; }

  fitCanvas() {
    const r = $("#frame-wrap").getBoundingClientRect();
    this.cv.width = Math.max(1, Math.floor(r.width)); this.cv.height = Math.max(1, Math.floor(r.height));
    this.tl.width = Math.max(1, Math.floor(this.tl.getBoundingClientRect().width));
  }

  fit() {
    if (!this.frame) return;
    const s = Math.min(this.cv.width / this.frame.width, this.cv.height / this.frame.height);
    this.view = { s, x: (this.cv.width - this.frame.width * s) / 2, y: (this.cv.height - this.frame.height * s) / 2, fit: true };
  }

  toScreen([x, y]) { return [this.view.x + x * this.view.s, this.view.y + y * this.view.s]; }
  toFrame(sx, sy) { return [(sx - this.view.x) / this.view.s, (sy - this.view.y) / this.view.s]; }

  // The stored masks of the frame's faces in the mask selector (the choice kept while it exists;
  // extended first by default).
  maskChoices() {
    const sel = $("#mask-name"), was = sel.value;
    const names = [...new Set(this.frame.faces.flatMap((f) => Object.keys(f.mask_outlines)))].sort();
    const same = names.length === sel.options.length && names.every((n, i) => sel.options[i].value === n);
    if (!same) {
      sel.replaceChildren(...names.map((n) => { const o = document.createElement("option"); o.value = o.textContent = n; return o; }));
      sel.value = names.includes(was) ? was : (names.includes("extended") ? "extended" : (names[0] || ""));
    }
  }

  draw() {
    const g = this.g;
    g.fillStyle = "#0c0d0f"; g.fillRect(0, 0, this.cv.width, this.cv.height);
    if (!this.frame) return;
    if (this.view.fit) this.fit();
    const { s, x, y } = this.view;
    if (this.img) g.drawImage(this.img, x, y, this.frame.width * s, this.frame.height * s);
    const maskName = $("#mask-name").value;
    let outlined = 0;
    this.frame.faces.forEach((f, k) => {
      const on = k === this.sel;
      const col = on ? "#e0a040" : (f.pinned ? "#3d8bfd" : "#4cae6a");
      g.lineWidth = 1;
      if ($("#show-mask").checked) {
        g.strokeStyle = "rgba(229,83,75,.8)"; g.setLineDash([4, 3]);
        for (const poly of f.mask_outlines[maskName] || []) {
          outlined += 1;
          g.beginPath(); poly.forEach((p, i) => { const [a, b] = this.toScreen(p); i ? g.lineTo(a, b) : g.moveTo(a, b); });
          g.closePath(); g.stroke();
        }
        g.setLineDash([]);
      }
      const [bx, by] = this.toScreen([f.bbox[0], f.bbox[1]]);
      g.strokeStyle = col; g.strokeRect(bx, by, f.bbox[2] * s, f.bbox[3] * s);
      g.fillStyle = col; g.font = "11px sans-serif";
      g.fillText(`${f.face}${f.pinned ? " ✎" : ""}${f.score < this.info.low_score ? " low" : ""}`, bx + 2, by - 3);
      const lm = f.landmarks;
      g.strokeStyle = on ? "rgba(224,160,64,.7)" : "rgba(76,174,106,.6)";
      for (const [a, b, closed] of LINES) {
        g.beginPath();
        for (let i = a; i < b; i++) { const [px, py] = this.toScreen(lm[i]); i === a ? g.moveTo(px, py) : g.lineTo(px, py); }
        if (closed) g.closePath();
        g.stroke();
      }
      const group = on ? this.groupIndices() : null;
      for (let i = 0; i < 68; i++) {
        const [px, py] = this.toScreen(lm[i]);
        g.fillStyle = group && group.has(i) ? "#fff" : col;
        g.fillRect(px - 1.5, py - 1.5, 3, 3);
      }
    });
    // what the outline shows, for the tests: frame:mask:polygons drawn
    document.body.dataset.maskOutlined = `${this.fi}:${$("#show-mask").checked ? maskName : ""}:${outlined}`;
    if (this.boxDraft) {
      const [a, b, c, d] = this.boxDraft;
      g.strokeStyle = "#3d8bfd"; g.setLineDash([5, 3]);
      g.strokeRect(...this.toScreen([a, b]), (c - a) * s, (d - b) * s); g.setLineDash([]);
    }
  }

  groupIndices() {
    const gname = $("#lm-group").value;
    if (gname === "point" || !this.info) return null;
    return new Set(this.info.groups[gname]);
  }

  drawTimeline() {
    if (!this.info) return;
    const g = this.tg, W = this.tl.width, H = this.tl.height, tl = this.info.timeline, n = tl.length;
    g.fillStyle = "#101114"; g.fillRect(0, 0, W, H);
    if (!n) return;
    const w = W / n;
    tl.forEach(([, faces, score, jump, pins], k) => {
      const x = Math.floor(k * w), ww = Math.max(1, Math.ceil(w));
      let c = "#2a3b2f";
      if (faces === 0) c = "#e5534b";
      else if (faces > 1) c = "#d8b13a";
      else if (score < this.info.low_score) c = "#e07b39";
      if (jump > this.info.jump_threshold) c = "#c55ad8";
      g.fillStyle = c; g.fillRect(x, 6, ww, H - 12);
      if (pins) { g.fillStyle = "#3d8bfd"; g.fillRect(x, 0, ww, 5); }
    });
    g.fillStyle = "#fff"; g.fillRect(Math.floor(this.pos * w), 0, Math.max(2, w), H);
  }

  flagged(k) {
    const [, faces, score, jump] = this.info.timeline[k];
    return faces !== 1 || score < this.info.low_score || jump > this.info.jump_threshold;
  }

  scrub(e) {
    const go = (ev) => {
      const r = this.tl.getBoundingClientRect();
      const k = Math.floor((ev.clientX - r.left) / r.width * this.info.timeline.length);
      if (k !== this.pos) this.goto(k).catch(this.studio.fail);
    };
    go(e);
    const up = () => { removeEventListener("mousemove", go); removeEventListener("mouseup", up); };
    addEventListener("mousemove", go); addEventListener("mouseup", up);
  }

  setMode(m) { this.mode = m; $("#btn-box").classList.toggle("on", m === "box"); this.cv.style.cursor = m === "box" ? "crosshair" : "default"; }

  hit(sx, sy) {
    if (!this.frame) return null;
    let best = null, bd = 8;
    const order = [this.sel, ...this.frame.faces.keys()].filter((v, i, a) => a.indexOf(v) === i);
    for (const k of order) {
      const f = this.frame.faces[k]; if (!f) continue;
      f.landmarks.forEach((p, i) => {
        const [px, py] = this.toScreen(p); const d = Math.hypot(px - sx, py - sy);
        if (d < bd) { bd = d; best = { k, i }; }
      });
    }
    return best;
  }

  mouseDown(e) {
    this.cv.focus();
    const r = this.cv.getBoundingClientRect();
    const sx = e.clientX - r.left, sy = e.clientY - r.top;
    if (e.button === 2 || e.button === 1) {  // pan
      const v0 = { ...this.view };
      const move = (ev) => { this.view = { ...v0, fit: false, x: v0.x + ev.clientX - e.clientX, y: v0.y + ev.clientY - e.clientY }; this.draw(); };
      const up = () => { removeEventListener("mousemove", move); removeEventListener("mouseup", up); };
      addEventListener("mousemove", move); addEventListener("mouseup", up);
      return;
    }
    if (!this.frame) return;
    const [fx, fy] = this.toFrame(sx, sy);
    if (this.mode === "box") {
      const move = (ev) => {
        const [x1, y1] = this.toFrame(ev.clientX - r.left, ev.clientY - r.top);
        this.boxDraft = [Math.min(fx, x1), Math.min(fy, y1), Math.max(fx, x1), Math.max(fy, y1)];
        this.draw();
      };
      const up = async () => {
        removeEventListener("mousemove", move); removeEventListener("mouseup", up);
        const b = this.boxDraft; this.boxDraft = null; this.setMode("edit");
        if (!b || b[2] - b[0] < 8 || b[3] - b[1] < 8) { this.draw(); return; }
        try {
          this.studio.status("fitting landmarks in the box…");
          const out = await post(`/api/store/${this.sid}/frame/${this.fi}/faces`, { bbox: [b[0], b[1], b[2] - b[0], b[3] - b[1]] });
          await this.reload(out.face);
          this.studio.status(`added face ${out.face}`);
        } catch (err) { this.studio.fail(err); this.draw(); }
      };
      addEventListener("mousemove", move); addEventListener("mouseup", up);
      return;
    }
    const h = this.hit(sx, sy);
    if (!h) {  // select the face whose box holds the click
      const k = this.frame.faces.findIndex((f) => fx >= f.bbox[0] && fx <= f.bbox[0] + f.bbox[2] && fy >= f.bbox[1] && fy <= f.bbox[1] + f.bbox[3]);
      if (k >= 0) { this.sel = k; this.faceInfo(); this.draw(); }
      return;
    }
    this.sel = h.k;
    const f = this.face();
    const orig = f.landmarks.map((p) => [...p]);
    const grp = this.groupIndices();
    const idx = grp ? [...grp] : [h.i];
    const cx = idx.reduce((a, i) => a + orig[i][0], 0) / idx.length, cy = idx.reduce((a, i) => a + orig[i][1], 0) / idx.length;
    let moved = false;
    const move = (ev) => {
      const [x1, y1] = this.toFrame(ev.clientX - r.left, ev.clientY - r.top);
      moved = true;
      if (ev.shiftKey && idx.length > 1) {
        const a = Math.atan2(y1 - cy, x1 - cx) - Math.atan2(fy - cy, fx - cx);
        const c = Math.cos(a), s = Math.sin(a);
        for (const i of idx) { const dx = orig[i][0] - cx, dy = orig[i][1] - cy; f.landmarks[i] = [cx + c * dx - s * dy, cy + s * dx + c * dy]; }
      } else if (ev.altKey && idx.length > 1) {
        const k = Math.max(0.05, Math.hypot(x1 - cx, y1 - cy) / Math.max(1e-6, Math.hypot(fx - cx, fy - cy)));
        for (const i of idx) f.landmarks[i] = [cx + (orig[i][0] - cx) * k, cy + (orig[i][1] - cy) * k];
      } else {
        for (const i of idx) f.landmarks[i] = [orig[i][0] + x1 - fx, orig[i][1] + y1 - fy];
      }
      this.draw();
    };
    const up = async () => {
      removeEventListener("mousemove", move); removeEventListener("mouseup", up);
      if (!moved) { this.faceInfo(); this.draw(); return; }
      try {
        await post(`/api/store/${this.sid}/frame/${this.fi}/face/${f.face}/landmarks`, { landmarks: f.landmarks, etag: f.etag });
        await this.reload(f.face);
        this.studio.status(`moved ${idx.length} landmark(s) of face ${f.face}`);
      } catch (err) { f.landmarks = orig; this.draw(); this.studio.fail(err); }
    };
    addEventListener("mousemove", move); addEventListener("mouseup", up);
  }

  wheel(e) {
    e.preventDefault();
    const r = this.cv.getBoundingClientRect();
    const sx = e.clientX - r.left, sy = e.clientY - r.top;
    const k = Math.exp(-e.deltaY * 0.0015);
    const [fx, fy] = this.toFrame(sx, sy);
    const s = Math.max(0.05, Math.min(40, this.view.s * k));
    this.view = { s, x: sx - fx * s, y: sy - fy * s, fit: false };
    this.draw();
  }

  async reload(face) {
    this.cache.delete(this.fi);
    await this.refreshInfo();
    await this.goto(this.pos, face);
  }

  async act(what) {
    const f = this.face();
    if (!f) return;
    const path = `/api/store/${this.sid}/frame/${this.fi}/face/${f.face}/${what}`;
    await post(path, { etag: f.etag }).then(async (r) => {
      await this.reload(what === "delete" ? undefined : f.face);
      this.studio.status(`${r.label}: face ${f.face}`);
    }).catch(this.studio.fail);
  }

  async copyFrom(d) {
    const t = this.info.timeline[this.pos + d];
    if (!t) { this.studio.status("no frame there", true); return; }
    try {
      const other = await get(`/api/store/${this.sid}/frame/${t[0]}`);
      const cur = this.face();
      const pick = other.faces.find((f) => cur && f.face === cur.face) || other.faces[0];
      if (!pick) { this.studio.status(`frame ${t[0]} has no face to copy`, true); return; }
      const out = await post(`/api/store/${this.sid}/frame/${this.fi}/copy`, { from_frame: t[0], face: pick.face });
      await this.reload(out.face);
      this.studio.status(`${out.label}: new face ${out.face}`);
    } catch (err) { this.studio.fail(err); }
  }

  async step(undo) {
    const r = await post(`/api/store/${this.sid}/${undo ? "undo" : "redo"}`);
    if (r.label && r.frame !== undefined) {
      const k = this.info.timeline.findIndex((t) => t[0] === r.frame);
      if (k >= 0) this.pos = k;
    }
    this.cache.delete(this.fi);
    await this.reload();
    this.studio.status(r.label ? `${undo ? "undone" : "redone"}: ${r.label}` : `nothing to ${undo ? "undo" : "redo"}`);
  }

  key(e) {
    const k = e.key;
    if (!this.info) return false;
    if (k === "ArrowRight" || k === "ArrowLeft") {
      this.goto(this.pos + (k === "ArrowRight" ? 1 : -1) * (e.shiftKey ? 10 : 1)).catch(this.studio.fail); return true;
    }
    if (k === "Home") { this.goto(0).catch(this.studio.fail); return true; }
    if (k === "End") { this.goto(this.info.timeline.length - 1).catch(this.studio.fail); return true; }
    if (k === "n" || k === "N") {
      const n = this.info.timeline.length, d = e.shiftKey ? -1 : 1;
      for (let j = this.pos + d; j >= 0 && j < n; j += d) if (this.flagged(j)) { this.goto(j).catch(this.studio.fail); return true; }
      this.studio.status("no more flagged frames that way"); return true;
    }
    if (k === "Tab") { if (this.frame && this.frame.faces.length) { this.sel = (this.sel + 1) % this.frame.faces.length; this.faceInfo(); this.draw(); } return true; }
    if (k === "g" || k === "G") { const s = $("#lm-group"); s.selectedIndex = (s.selectedIndex + 1) % s.options.length; this.draw(); return true; }
    if (k === "b" || k === "B") { this.setMode(this.mode === "box" ? "edit" : "box"); return true; }
    if (k === "Escape") { this.setMode("edit"); this.boxDraft = null; this.draw(); return true; }
    if (k === "a" || k === "A") { this.act("realign"); return true; }
    if (k === "Delete" || k === "Backspace") { this.act("delete"); return true; }
    if (k === "k" || k === "K") { this.act("keep"); return true; }
    if (k === "[") { this.copyFrom(-1); return true; }
    if (k === "]") { this.copyFrom(1); return true; }
    if (k === "m" || k === "M") { $("#show-mask").checked = !$("#show-mask").checked; this.draw(); return true; }
    if (k === "0") { this.view.fit = true; this.draw(); return true; }
    if (k === "l" || k === "L") { if (this.face()) this.studio.show("masks"); return true; }
    return false;
  }
}
