// The JSON API: every request carries the access token (header for fetch; the page's cookie
// covers <img> requests). The token comes from the URL `faceplate studio` printed.

const params = new URLSearchParams(location.search);
let token = params.get("token") || sessionStorage.getItem("faceplate-token") || "";
if (params.get("token")) {
  sessionStorage.setItem("faceplate-token", token);
  history.replaceState(null, "", location.pathname + location.hash); // keep it out of history
}

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function call(method, path, body) {
  const opts = { method, headers: { "X-Faceplate-Token": token } };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  const type = r.headers.get("content-type") || "";
  const data = type.includes("json") ? await r.json() : await r.blob();
  if (!r.ok) throw new ApiError(r.status, (data && data.error) || `${r.status} ${r.statusText}`);
  return data;
}

export const get = (path) => call("GET", path);
export const post = (path, body = {}) => call("POST", path, body);
export const imgUrl = (path) => path;  // the cookie carries the token
