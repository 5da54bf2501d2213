// The only way the console gets data: the server's /api/v1 routes, same origin, with the
// session cookie (never a token in a URL).

export class ApiError extends Error {
  constructor(status, detail, code) {
    super(detail);
    this.status = status;
    this.code = code;
  }
}

export function encodeKey(key) {
  return key.split("/").map(encodeURIComponent).join("/");
}

export function objectUrl(key) {
  return "/api/v1/storage/objects/" + encodeKey(key);
}

async function failure(response) {
  let detail = response.statusText || "HTTP " + response.status;
  let code = "http_error";
  try {
    const body = await response.json();
    detail = body.detail || detail;
    code = body.error_code || code;
  } catch (_) { /* not the JSON error shape: keep the status text */ }
  if (response.status === 401) window.dispatchEvent(new CustomEvent("factflow:unauthorized"));
  return new ApiError(response.status, detail, code);
}

export async function request(path, { method = "GET", params, body, headers, signal } = {}) {
  let url = path;
  if (params) {
    const query = new URLSearchParams();
    for (const [name, value] of Object.entries(params)) {
      if (value !== undefined && value !== null && value !== "") query.set(name, String(value));
    }
    if ([...query].length) url += "?" + query;
  }
  const init = { method, headers: { ...(headers || {}) }, credentials: "same-origin", signal };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, `The server did not answer (${err.message}): is factflow serve still running?`, "unreachable");
  }
  if (!response.ok && response.status !== 206) throw await failure(response);
  return response;
}

export async function getJSON(path, options) {
  return (await request(path, options)).json();
}

export const api = {
  // One page, newest first: { executions, next_cursor }.
  executions: (params) => getJSON("/api/v1/executions", { params }),
  execution: (id) => getJSON("/api/v1/executions/" + encodeURIComponent(id)),
  list: (params) => getJSON("/api/v1/storage/objects", { params }),
  metadata: (key) => getJSON(objectUrl(key), { params: { view: "metadata" } }),
  // The first `bytes` of an object (a Range request), with its headers.
  head: (key, bytes) => request(objectUrl(key), { params: { view: "content" }, headers: { Range: `bytes=0-${bytes - 1}` } }),
  prepareArchive: (executionId) => getJSON("/api/v1/content/archive/prepare", { method: "POST", body: { execution_id: executionId } }),
  archiveStatus: (job) => getJSON(`/api/v1/content/archive/${encodeURIComponent(job)}/status`),
  archiveUrl: (job) => `/api/v1/content/archive/${encodeURIComponent(job)}/download`,
  login: (token) => getJSON("/api/v1/session", { method: "POST", body: { token } }),
  logout: () => getJSON("/api/v1/session", { method: "DELETE" }),
  // depth=0: the parents are in the metadata already; only the children are wanted here.
  children: (key, signal) => getJSON("/api/v1/storage/lineage", { params: { key, depth: 0, children: "true" }, signal }),
  deps: (id) => getJSON(`/api/v1/executions/${encodeURIComponent(id)}/deps`),
  // A DELETE without confirm=true is the server's dry run: it only plans.
  deleteExecution: (id, { confirm = false, force = false } = {}) => getJSON("/api/v1/executions/" + encodeURIComponent(id),
    { method: "DELETE", params: { confirm: confirm ? "true" : undefined, force: force ? "true" : undefined } }),
  deletions: () => getJSON("/api/v1/deletions"),
  graph: (id) => getJSON(`/api/v1/executions/${encodeURIComponent(id)}/graph`),
  // route_id and stage narrow a stream to one stage (its replay then reads only that stage).
  eventsUrl: (executionId, filters = {}) => "/api/v1/storage/events?" + new URLSearchParams(
    Object.entries({ execution_id: executionId, ...filters }).filter(([, value]) => value)),
};
