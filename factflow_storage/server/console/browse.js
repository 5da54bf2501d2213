// One page of a prefix from the list API (delimiter '/', so routes and stages show as
// folders), paged with its opaque cursor: each page has its own URL, so Back returns to
// the previous one. A name filter (`q`: text, or a glob such as msg-04*) and a jump to a
// key (`from`) are applied by the server, which scans a bounded number of keys per
// request, so a stage of any size is never read whole. Metadata is not fetched for a
// listing (one read per object): the object view reads it. While the execution runs, the
// page's one event stream adds new objects to the page they belong on.
import { api } from "./api.js";
import { clear, counted, h, humanSize, time } from "./dom.js";
import { href, go } from "./router.js";
import { openStream } from "./stream.js";
import { streamState } from "./live.js";

export const PAGE_SIZE = 100;
const GLOB = /[*?[]/;

export function crumbsFor(key) {
  const parts = key.split("/").filter((part, index, all) => part !== "" || index < all.length - 1);
  const items = [["executions", "#/"]];
  let start = 0;
  if (parts[0] === "executions" && parts.length > 1) {
    items.push([parts[1], href("execution", parts[1])]);
    start = 2;
  } else {
    items.push(["/", href("browse", "")]);
  }
  for (let index = start; index < parts.length; index += 1) {
    const isFolder = index < parts.length - 1 || key.endsWith("/");
    const target = parts.slice(0, index + 1).join("/") + (isFolder ? "/" : "");
    items.push([parts[index], isFolder ? href("browse", target) : href("object", target)]);
  }
  items[items.length - 1] = [items[items.length - 1][0], null];
  return items;
}

function leaf(path, prefix) {
  return path.slice(prefix.length) || path;
}

// The server's name filter, mirrored for entries that arrive live: a glob matches the
// whole name, plain text anywhere in it.
function nameTest(query) {
  if (!query) return () => true;
  if (!GLOB.test(query)) return (name) => name.includes(query);
  let source = "";
  for (let index = 0; index < query.length; index += 1) {
    const char = query[index];
    if (char === "*") source += "[^]*";
    else if (char === "?") source += "[^]";
    else if (char === "[") {
      const end = query.indexOf("]", index + 2);
      if (end < 0) { source += "\\["; continue; }
      let set = query.slice(index + 1, end).replace(/\\/g, "\\\\");
      if (set.startsWith("!")) set = "^" + set.slice(1);
      source += `[${set}]`;
      index = end;
    } else source += char.replace(/[.+^${}()|\\\]]/g, "\\$&");
  }
  const pattern = new RegExp(`^${source}$`);
  return (name) => pattern.test(name);
}

// So that a listing from `key` shows `key` first: list after the greatest name below it
// (its last character one lower, then the highest code point, which also sorts last in
// UTF-8 byte order, as S3 sorts).
function justBefore(key) {
  const chars = Array.from(key);
  const code = chars.pop().codePointAt(0);
  return code > 1 ? chars.join("") + String.fromCodePoint(code - 1) + "\u{10FFFF}" : chars.join("");
}

function objectRow(row, prefix) {
  return h("tr", { dataset: { key: row.key } },
    h("td", { class: "key" }, h("a", { href: href("object", row.key) }, leaf(row.key, prefix))),
    h("td", { class: "num" }, humanSize(row.size)),
    h("td", { class: "hide-narrow" }, time(row.last_modified)));
}

function folderRow(sub, prefix) {
  return h("tr", { dataset: { prefix: sub } },
    h("td", { class: "key" }, h("a", { href: href("browse", sub) }, leaf(sub, prefix))),
    h("td", { class: "num" }, ""), h("td", { class: "hide-narrow" }, ""));
}

function filterForm(prefix, query, from) {
  const filter = h("input", { type: "search", id: "filter", name: "q", value: query || "", size: 24,
    placeholder: "text, or a glob: msg-04*", "aria-label": "Filter names" });
  const jump = h("input", { type: "search", id: "jump", name: "from", value: from || "", size: 24,
    placeholder: "a name, e.g. msg-04999", "aria-label": "Jump to name" });
  const submit = (event) => {
    event.preventDefault();
    const params = {};
    if (filter.value) params.q = filter.value;
    if (jump.value) params.from = jump.value;
    go("browse", prefix, params);
  };
  return h("form", { class: "row filters", id: "listing-filters", role: "search", onsubmit: submit },
    h("label", null, "Filter ", filter), h("label", null, "Jump to ", jump),
    h("button", { type: "submit", id: "filter-apply" }, "Show"),
    query || from ? h("a", { href: href("browse", prefix), id: "filter-clear" }, "clear") : null);
}

// params: cursor (next page), q (name filter), from (jump to a name).
export async function listingSection(prefix, params = new URLSearchParams(), { filters = false } = {}) {
  const cursor = params.get("cursor");
  const query = params.get("q") || "";
  const from = params.get("from") || "";
  const base = prefix.slice(0, prefix.lastIndexOf("/") + 1);
  const request = { prefix, delimiter: "/", include_metadata: "false", limit: PAGE_SIZE, cursor };
  if (query) request[GLOB.test(query) ? "match" : "contains"] = query;
  if (from && !cursor) request.start_after = justBefore(base + from);
  const page = await api.list(request);
  const folders = h("tbody", { id: "listing-folders" }, page.common_prefixes.map((sub) => folderRow(sub, prefix)));
  const objects = h("tbody", { id: "listing-objects" }, page.objects.map((row) => objectRow(row, prefix)));
  const table = h("table", { id: "listing" }, h("thead", null, h("tr", null, h("th", null, "Name"),
    h("th", { class: "num" }, "Size"), h("th", { class: "hide-narrow" }, "Modified"))), folders, objects);
  const searching = (query && page.next_cursor && page.objects.length + page.common_prefixes.length < PAGE_SIZE);
  const empty = h("p", { class: "muted", id: "listing-empty" }, searching ? "No match in the names searched so far."
    : query ? "No name matches the filter." : "Nothing under this prefix.");
  const keep = { ...(query ? { q: query } : {}) };
  const summary = h("span", { class: "muted", id: "listing-count" });
  const count = () => {
    summary.textContent = `${counted(objects.childElementCount, "object")}, ${counted(folders.childElementCount, "folder")} on this page`;
  };
  count();
  const pager = h("div", { class: "pager" },
    cursor || from ? h("a", { class: "button", href: href("browse", prefix, keep) }, "« First page") : null,
    page.next_cursor ? h("a", { class: "button", id: "next-page", rel: "next",
      href: href("browse", prefix, { ...keep, cursor: page.next_cursor }) }, searching ? "Search on »" : "Next page »") : null,
    summary);
  const hasRows = () => folders.childElementCount + objects.childElementCount > 0;
  const section = h("section", { "aria-label": "Listing", id: "listing-section" },
    filters ? filterForm(prefix, query, from) : null, hasRows() ? table : empty, pager);

  // Entries written after the page was listed: added where the key order puts them, if
  // they fall within this page (a later page shows the rest), without moving the others.
  const first = [...page.common_prefixes, ...page.objects.map((row) => row.key)].sort()[0];
  const last = page.next_cursor ? [...page.common_prefixes, ...page.objects.map((row) => row.key)].sort().pop() : null;
  const passes = nameTest(query);
  section.addObject = (event) => {
    if (!event.key.startsWith(prefix)) return;
    const rest = event.key.slice(prefix.length);
    const folder = rest.includes("/") ? prefix + rest.split("/")[0] + "/" : null;
    const name = folder || event.key;
    if (!passes(name.slice(base.length).replace(/\/$/, ""))) return;
    if ((cursor || from) && first !== undefined && name <= first) return;
    if (last !== null && name >= last) return;
    const body = folder ? folders : objects;
    const attr = folder ? "prefix" : "key";
    if ([...body.children].some((row) => row.dataset[attr] === name)) return;
    const row = folder ? folderRow(folder, prefix)
      : objectRow({ key: event.key, size: event.size, last_modified: event.created_at }, prefix);
    row.classList.add("new");
    const after = [...body.children].find((other) => other.dataset[attr] > name);
    body.insertBefore(row, after || null);
    if (!table.isConnected) empty.replaceWith(table);
    count();
  };
  return section;
}

// The execution and the stage (route_id, stage) a prefix lies in, when it does.
function scopeOf(prefix) {
  const parts = prefix.split("/");
  if (parts[0] !== "executions" || !parts[1] || parts.length < 3) return null;
  const whole = (index) => (parts.length > index + 1 ? parts[index] : undefined);
  return { execution: parts[1], filters: { route_id: whole(2), stage: whole(3) } };
}

export async function renderBrowse(main, route, ctx) {
  const prefix = route.arg;
  ctx.setCrumbs(crumbsFor(prefix));
  const scope = scopeOf(prefix);
  const [section, record] = await Promise.all([
    listingSection(prefix, route.params, { filters: true }),
    scope ? api.execution(scope.execution).catch(() => null) : null,
  ]);
  const parts = [h("h1", { class: "mono" }, prefix || "/")];
  let close = null;
  if (record && record.status === "running") {
    const label = h("span", { id: "listing-live-state", class: "muted" });
    const line = h("p", { id: "listing-live", class: "row" }, h("strong", null, "Live"), label);
    parts.push(line);
    close = openStream(scope.execution, { filters: scope.filters,
      onState: (name, detail) => streamState(line, label, name, detail), onObject: section.addObject });
  }
  clear(main).append(...parts, section);
  return close;
}
