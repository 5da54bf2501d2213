// Hash routes, so every view has a stable URL the server need not know about, and the
// back button walks the views:
//   #/                      executions
//   #/e/<execution id>      one execution: its routes, live writes, download
//   #/b/<prefix>?cursor=..  a prefix, one page of the list API at a time
//   #/o/<key>               one object: metadata, lineage, preview
//   #/login?next=<route>    the token form (token-protected servers)
import { encodeKey } from "./api.js";

export function parse(hash) {
  const raw = (hash || "").replace(/^#/, "") || "/";
  const [path, query = ""] = raw.split(/\?(.*)/s);
  const params = new URLSearchParams(query);
  const match = /^\/(e|b|o|login)(?:\/(.*))?$/s.exec(path);
  if (!match) return { view: "executions", params };
  const arg = match[2] === undefined ? "" : match[2].split("/").map(decodeURIComponent).join("/");
  const view = { e: "execution", b: "browse", o: "object", login: "login" }[match[1]];
  return { view, arg, params };
}

export function href(view, arg = "", params = null) {
  const code = { executions: "", execution: "e", browse: "b", object: "o", login: "login" }[view];
  let out = code ? `#/${code}/` + (view === "execution" ? encodeURIComponent(arg) : encodeKey(arg)) : "#/";
  if (view === "login") out = "#/login";
  const query = params ? new URLSearchParams(params).toString() : "";
  return query ? `${out}?${query}` : out;
}

export function go(view, arg, params) {
  location.hash = href(view, arg, params);
}
