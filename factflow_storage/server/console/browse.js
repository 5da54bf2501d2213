// One page of a prefix from the list API (delimiter '/', so routes and stages show as
// folders), paged with its opaque cursor: each page has its own URL, so Back returns to
// the previous one. Metadata is not fetched for a listing (one read per object): the
// object view reads it.
import { api } from "./api.js";
import { clear, h, humanSize, time } from "./dom.js";
import { href } from "./router.js";

export const PAGE_SIZE = 100;

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

export async function listingSection(prefix, cursor) {
  const page = await api.list({ prefix, delimiter: "/", include_metadata: "false", limit: PAGE_SIZE, cursor });
  const rows = [
    ...page.common_prefixes.map((sub) => h("tr", { dataset: { prefix: sub } },
      h("td", { class: "key" }, h("a", { href: href("browse", sub) }, leaf(sub, prefix))),
      h("td", { class: "num" }, ""), h("td", { class: "hide-narrow" }, ""))),
    ...page.objects.map((row) => h("tr", { dataset: { key: row.key } },
      h("td", { class: "key" }, h("a", { href: href("object", row.key) }, leaf(row.key, prefix))),
      h("td", { class: "num" }, humanSize(row.size)),
      h("td", { class: "hide-narrow" }, time(row.last_modified)))),
  ];
  const pager = h("div", { class: "pager" },
    cursor ? h("a", { class: "button", href: href("browse", prefix) }, "« First page") : null,
    page.next_cursor ? h("a", { class: "button", id: "next-page", rel: "next",
      href: href("browse", prefix, { cursor: page.next_cursor }) }, "Next page »") : null,
    h("span", { class: "muted" }, `${page.objects.length} objects, ${page.common_prefixes.length} folders on this page`));
  const body = rows.length
    ? h("table", { id: "listing" }, h("thead", null, h("tr", null, h("th", null, "Name"),
      h("th", { class: "num" }, "Size"), h("th", { class: "hide-narrow" }, "Modified"))), h("tbody", null, rows))
    : h("p", { class: "muted" }, "Nothing under this prefix.");
  return h("section", { "aria-label": "Listing" }, body, pager);
}

export async function renderBrowse(main, route, ctx) {
  const prefix = route.arg;
  ctx.setCrumbs(crumbsFor(prefix));
  const section = await listingSection(prefix, route.params.get("cursor"));
  clear(main).append(h("h1", { class: "mono" }, prefix || "/"), section);
}
