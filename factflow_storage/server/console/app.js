// Boot and dispatch: each hash change renders one view into <main>. A view is
// `render(main, route, ctx)`; it returns an optional cleanup (close streams, stop polls)
// run before the next view.
import { api, ApiError } from "./api.js";
import { clear, errorBox, h } from "./dom.js";
import { parse, href, go } from "./router.js";
import { renderExecutions } from "./executions.js";
import { renderExecution } from "./execution.js";
import { renderBrowse } from "./browse.js";
import { renderObject } from "./object.js";
import { renderLogin } from "./login.js";

const VIEWS = { executions: renderExecutions, execution: renderExecution, browse: renderBrowse,
  object: renderObject, login: renderLogin };
// Headings of the error page, by HTTP status (0: no answer at all).
const TITLES = { 0: "Server unreachable", 400: "Bad request", 404: "Not found", 503: "Storage unavailable" };
let cleanup = null;
let generation = 0;

function setCrumbs(items) {
  const list = clear(document.getElementById("crumbs"));
  for (const [label, link] of items) {
    list.append(h("li", null, link ? h("a", { href: link }, label) : h("span", { "aria-current": "page" }, label)));
  }
}

async function show() {
  if (cleanup) { try { cleanup(); } catch (_) { /* a view's cleanup never blocks the next */ } }
  cleanup = null;
  const mine = ++generation;
  const drawn = location.hash;
  document.getElementById("main").removeAttribute("data-error");
  const main = document.getElementById("main");
  main.removeAttribute("data-ready");
  setCrumbs([]);
  const started = performance.now();
  try {
    // Inside the try: a malformed link (a bad percent escape) is an error to show, and
    // must not leave the previous view on screen.
    let route;
    try {
      route = parse(location.hash);
    } catch (err) {
      main.dataset.view = "error";
      throw new ApiError(400, `This link is malformed (${err.message}): ${location.hash.slice(0, 200)}`, "bad_link");
    }
    main.dataset.view = route.view;
    const result = await VIEWS[route.view](main, route, { setCrumbs, isCurrent: () => mine === generation });
    if (mine !== generation) { if (typeof result === "function") result(); return; }
    cleanup = typeof result === "function" ? result : null;
  } catch (err) {
    if (mine !== generation) return;
    if (err.status === 401) return;
    clear(main).append(h("h1", null, TITLES[err.status] || "Something went wrong"), errorBox(err),
      h("p", null, h("a", { href: "#/" }, "All executions"), " · ",
        h("button", { type: "button", id: "retry", onclick: show }, "Try again")));
    main.dataset.error = err.code || "error";
  }
  if (mine === generation) {
    // Tests and the curious read how long the view took to show its data, and for which
    // link: after a hash change, until show() runs, the previous view still says ready.
    main.dataset.loadMs = String(Math.round(performance.now() - started));
    main.dataset.route = drawn;
    main.dataset.ready = "true";
  }
}

window.addEventListener("factflow:unauthorized", () => {
  let view = null;
  try { view = parse(location.hash).view; } catch (_) { /* a malformed link is no login page */ }
  if (view !== "login") go("login", "", { next: location.hash || "#/" });
});
window.addEventListener("hashchange", show);
document.getElementById("logout").addEventListener("click", async () => {
  sessionStorage.removeItem("factflow.session");
  document.getElementById("logout").hidden = true;
  try { await api.logout(); } finally { location.hash = href("login"); }
});
document.getElementById("logout").hidden = !sessionStorage.getItem("factflow.session");
show();
