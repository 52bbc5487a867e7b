// Mask labelling: include / exclude polygons and a brush on the aligned face, stored as vector
// shapes in face-aligned coordinates with the crop's frame → crop matrix (so they survive a
// change of crop size or landmarks). Shapes apply in order: include paints face, exclude paints
// what covers it (hands, hair, glasses, microphones).
import { post } from "./api.js";

const $ = (s) => document.querySelector(s);
const SIZE = 512;

function inv(m) {
  const [[a, b, c], [d, e, f]] = m, det = a * e - b * d;
  return [[e / det, -b / det, (b * f - c * e) / det], [-d / det, a / det, (c * d - a * f) / det]];
}
function mul(m, n) {  // apply n, then m
  return [[m[0][0] * n[0][0] + m[0][1] * n[1][0], m[0][0] * n[0][1] + m[0][1] * n[1][1], m[0][0] * n[0][2] + m[0][1] * n[1][2] + m[0][2]],
          [m[1][0] * n[0][0] + m[1][1] * n[1][0], m[1][0] * n[0][1] + m[1][1] * n[1][1], m[1][0] * n[0][2] + m[1][1] * n[1][2] + m[1][2]]];
}
const apply = (m, [x, y]) => [m[0][0] * x + m[0][1] * y + m[0][2], m[1][0] * x + m[1][1] * y + m[1][2]];

export class MaskView {
  constructor(studio, frames) {
    this.studio = studio; this.frames = frames;
    this.cv = $("#mask-canvas"); this.g = this.cv.getContext("2d");
    this.off = document.createElement("canvas"); this.off.width = this.off.height = SIZE;
    this.tool = "poly-include"; this.draft = null; this.shapes = []; this.img = null;
    new ResizeObserver(() => this.fitCanvas()).observe($("#mask-wrap"));
    for (const b of document.querySelectorAll("[data-tool]"))
      b.addEventListener("click", () => this.setTool(b.dataset.tool));
    this.cv.addEventListener("mousedown", (e) => this.mouseDown(e));
    this.cv.addEventListener("dblclick", () => this.closePolygon());
    $("#btn-clear-labels").addEventListener("click", () => this.save(null));
    $("#btn-export").addEventListener("click", () => this.transfer("export"));
    $("#btn-import").addEventListener("click", () => this.transfer("import"));
    this.setTool("poly-include");
    studio.register("masks", [
      ["P / O", "include / exclude polygon: click points, Enter or double-click closes"],
      ["I / E", "include / exclude brush: drag"], ["[ / ]", "brush radius smaller / larger"],
      ["Backspace / Esc", "remove the last polygon point / drop the polygon"],
      ["Tab", "next face in the frame"], ["← / →", "previous / next frame"],
    ]);
  }

  setTool(t) {
    this.tool = t; this.draft = null;
    for (const b of document.querySelectorAll("[data-tool]")) b.classList.toggle("on", b.dataset.tool === t);
    this.draw();
  }

  async open(sid) {
    if (sid === null || sid === undefined) { this.studio.status("no alignments store open"); return; }
    const fv = this.frames;
    if (fv.sid !== sid || !fv.frame) await fv.open(sid);
    else { const f = fv.face(); await fv.reload(f ? f.face : undefined); }  // fresh labels
    await this.load();
    this.cv.focus();
  }

  async load() {
    const fv = this.frames, f = fv.face();
    this.face = f; this.draft = null;
    $("#labelled-count").textContent = `${fv.info.labelled} labelled face(s) in ${fv.info.name}`;
    if (!f) { this.img = null; this.shapes = []; $("#mask-label").textContent = `frame ${fv.fi}: no face`; this.draw(); return; }
    $("#mask-label").textContent = `frame ${fv.fi} face ${f.face}`;
    const k = SIZE / f.crop.size;
    this.matrix = f.crop.matrix.map((row) => row.map((v) => v * k));
    this.shapes = [];
    if (f.labels) {
      const to = mul(this.matrix, inv(f.labels.matrix));
      const scale = Math.sqrt(Math.abs(to[0][0] * to[1][1] - to[0][1] * to[1][0]));
      this.shapes = f.labels.shapes.map((s) => ({ ...s, points: s.points.map((p) => apply(to, p)),
        ...(s.kind === "stroke" ? { radius: s.radius * scale } : {}) }));
    }
    this.img = await new Promise((res, rej) => {
      const im = new Image(); im.onload = () => res(im);
      im.onerror = () => rej(new Error("the face crop could not be read"));
      im.src = `/api/store/${fv.sid}/frame/${fv.fi}/face/${f.face}/crop?size=${SIZE}`;
    });
    this.draw();
    document.body.dataset.maskShown = `${fv.fi}:${f.face}`;
  }

  fitCanvas() {
    const r = $("#mask-wrap").getBoundingClientRect();
    this.cv.width = Math.max(1, Math.floor(r.width)); this.cv.height = Math.max(1, Math.floor(r.height));
    this.draw();
  }

  get view() {
    const s = Math.min(this.cv.width, this.cv.height) / SIZE;
    return { s, x: (this.cv.width - SIZE * s) / 2, y: (this.cv.height - SIZE * s) / 2 };
  }

  render(shapes) {
    const g = this.off.getContext("2d");
    g.clearRect(0, 0, SIZE, SIZE);
    for (const sh of shapes) {
      g.globalCompositeOperation = sh.mode === "include" ? "source-over" : "destination-out";
      g.fillStyle = g.strokeStyle = "#4cae6a";
      g.beginPath();
      if (sh.kind === "polygon") {
        sh.points.forEach(([x, y], i) => i ? g.lineTo(x - 0.5, y - 0.5) : g.moveTo(x - 0.5, y - 0.5));
        g.closePath(); g.fill();
      } else {
        g.lineWidth = 2 * sh.radius; g.lineCap = g.lineJoin = "round";
        sh.points.forEach(([x, y], i) => i ? g.lineTo(x - 0.5, y - 0.5) : g.moveTo(x - 0.5, y - 0.5));
        if (sh.points.length === 1) { g.arc(sh.points[0][0] - 0.5, sh.points[0][1] - 0.5, sh.radius, 0, 2 * Math.PI); g.fill(); }
        else g.stroke();
      }
    }
    g.globalCompositeOperation = "source-over";
  }

  draw() {
    const g = this.g, { s, x, y } = this.view;
    g.fillStyle = "#0c0d0f"; g.fillRect(0, 0, this.cv.width, this.cv.height);
    if (!this.img) return;
    g.drawImage(this.img, x, y, SIZE * s, SIZE * s);
    const shapes = [...this.shapes];
    if (this.draft && this.draft.kind === "stroke") shapes.push(this.draft);
    this.render(shapes);
    g.globalAlpha = 0.45; g.drawImage(this.off, x, y, SIZE * s, SIZE * s); g.globalAlpha = 1;
    for (const sh of this.shapes) if (sh.kind === "polygon") {
      g.strokeStyle = sh.mode === "include" ? "#4cae6a" : "#e5534b";
      g.beginPath(); sh.points.forEach(([px, py], i) => i ? g.lineTo(x + px * s, y + py * s) : g.moveTo(x + px * s, y + py * s));
      g.closePath(); g.stroke();
    }
    if (this.draft && this.draft.kind === "polygon") {
      g.strokeStyle = this.draft.mode === "include" ? "#4cae6a" : "#e5534b"; g.setLineDash([4, 3]);
      g.beginPath(); this.draft.points.forEach(([px, py], i) => i ? g.lineTo(x + px * s, y + py * s) : g.moveTo(x + px * s, y + py * s));
      g.stroke(); g.setLineDash([]);
      for (const [px, py] of this.draft.points) g.fillRect(x + px * s - 2, y + py * s - 2, 4, 4);
    }
  }

  toCrop(e) {
    const r = this.cv.getBoundingClientRect(), { s, x, y } = this.view;
    return [(e.clientX - r.left - x) / s, (e.clientY - r.top - y) / s];
  }

  mouseDown(e) {
    if (!this.face || e.button !== 0) return;
    this.cv.focus();
    const p = this.toCrop(e);
    const mode = this.tool.endsWith("include") ? "include" : "exclude";
    if (this.tool.startsWith("poly")) {
      if (!this.draft) this.draft = { kind: "polygon", mode, points: [] };
      const first = this.draft.points[0];
      const { s } = this.view;
      if (first && this.draft.points.length >= 3 && Math.hypot(first[0] - p[0], first[1] - p[1]) * s < 7) { this.closePolygon(); return; }
      this.draft.points.push(p); this.draw(); return;
    }
    const r = Number($("#brush-r").value) || 8;
    this.draft = { kind: "stroke", mode, radius: r, points: [p] };
    this.draw();
    const move = (ev) => { this.draft.points.push(this.toCrop(ev)); this.draw(); };
    const up = () => {
      removeEventListener("mousemove", move); removeEventListener("mouseup", up);
      const d = this.draft; this.draft = null;
      this.shapes.push(d); this.save(this.shapes);
    };
    addEventListener("mousemove", move); addEventListener("mouseup", up);
  }

  closePolygon() {
    const d = this.draft;
    if (!d || d.kind !== "polygon") return;
    this.draft = null;
    if (d.points.length < 3) { this.studio.status("a polygon needs 3 points", true); this.draw(); return; }
    this.shapes.push(d); this.save(this.shapes);
  }

  async save(shapes) {
    const fv = this.frames, f = this.face;
    const clip = (v) => Math.max(-SIZE + 1, Math.min(2 * SIZE - 1, v));
    const labels = shapes && shapes.length ? {
      size: SIZE, centering: f.crop.centering, matrix: this.matrix,
      shapes: shapes.map((s) => ({ ...s, points: s.points.map(([x, y]) => [clip(x), clip(y)]) })),
    } : null;
    try {
      const r = await post(`/api/store/${fv.sid}/frame/${fv.fi}/face/${f.face}/labels`, { labels, etag: f.etag });
      await fv.reload(f.face);
      await this.load();
      this.studio.status(`${r.label} saved (frame ${fv.fi} face ${f.face})`);
    } catch (err) { this.studio.fail(err); await this.load().catch(() => {}); }
  }

  async transfer(what) {
    try {
      const r = await post(`/api/store/${this.frames.sid}/labels/${what}`);
      await this.frames.reload(this.face && this.face.face);
      await this.load();
      this.studio.status(what === "export" ? `${r.written} mask image(s) written to ${r.folder}` : `${r.imported} face(s) labelled from ${r.folder}`);
    } catch (err) { this.studio.fail(err); }
  }

  async step(undo) {
    await this.frames.step(undo);
    await this.load();
  }

  key(e) {
    const k = e.key;
    const tools = { p: "poly-include", o: "poly-exclude", i: "brush-include", e: "brush-exclude" };
    if (tools[k.toLowerCase()]) { this.setTool(tools[k.toLowerCase()]); return true; }
    if (k === "Enter") { this.closePolygon(); return true; }
    if (k === "Escape") { this.draft = null; this.draw(); return true; }
    if (k === "Backspace" && this.draft && this.draft.kind === "polygon") { this.draft.points.pop(); this.draw(); return true; }
    if (k === "[" || k === "]") { const r = $("#brush-r"); r.value = Math.max(1, Number(r.value) + (k === "]" ? 2 : -2)); return true; }
    if (k === "Tab") { const fv = this.frames; if (fv.frame && fv.frame.faces.length) { fv.sel = (fv.sel + 1) % fv.frame.faces.length; this.load().catch(this.studio.fail); } return true; }
    if (k === "ArrowRight" || k === "ArrowLeft") {
      const fv = this.frames, face = this.face ? this.face.face : undefined;
      fv.goto(fv.pos + (k === "ArrowRight" ? 1 : -1), face).then(() => this.load()).catch(this.studio.fail); return true;
    }
    return false;
  }
}
