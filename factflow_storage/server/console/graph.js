// The pipeline as a picture: an SVG node per route/stage (objects, bytes; a link to the
// stage's listing) and an arrow per parent stage -> child stage, laid out in columns by
// the longest path from a stage nothing feeds. No library: a few dozen stages at most.
import { counted, h, humanSize } from "./dom.js";
import { href } from "./router.js";

const NS = "http://www.w3.org/2000/svg";
const NODE_W = 230;
const NODE_H = 58;
const GAP_X = 70;
const GAP_Y = 22;
const PAD = 10;
const LABEL_CHARS = 30;

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(NS, tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value !== undefined && value !== null) node.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function clip(text) {
  return text.length > LABEL_CHARS ? text.slice(0, LABEL_CHARS - 1) + "…" : text;
}

// Column of each node: the longest path to it from a node without parents (a cycle,
// which lineage should never make, stops growing after as many rounds as there are nodes).
function columns(nodes, edges) {
  const column = new Map(nodes.map((node) => [node.id, 0]));
  for (let round = 0; round < nodes.length; round += 1) {
    let changed = false;
    for (const edge of edges) {
      const next = (column.get(edge.from) ?? 0) + 1;
      if (edge.from !== edge.to && next > (column.get(edge.to) ?? 0)) { column.set(edge.to, next); changed = true; }
    }
    if (!changed) break;
  }
  return column;
}

export function drawGraph(executionId, graph) {
  const column = columns(graph.nodes, graph.edges);
  const byColumn = [];
  for (const node of graph.nodes) (byColumn[column.get(node.id)] ||= []).push(node);
  const at = new Map();
  byColumn.forEach((list, index) => list.forEach((node, row) => {
    at.set(node.id, { x: PAD + index * (NODE_W + GAP_X), y: PAD + row * (NODE_H + GAP_Y) });
  }));
  const width = PAD * 2 + Math.max(1, byColumn.length) * (NODE_W + GAP_X) - GAP_X;
  const height = PAD * 2 + Math.max(1, ...byColumn.map((list) => (list || []).length)) * (NODE_H + GAP_Y) - GAP_Y;
  const picture = svg("svg", { id: "graph", class: "graph", role: "img", width, height, viewBox: `0 0 ${width} ${height}`,
    "aria-label": `Pipeline of ${executionId}: ${counted(graph.nodes.length, "stage")}, ${counted(graph.edges.length, "edge")}` },
  svg("defs", null, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7,
    markerHeight: 7, orient: "auto-start-reverse" }, svg("path", { d: "M0,0 L10,5 L0,10 z", class: "arrowhead" }))));
  for (const edge of graph.edges) {
    const from = at.get(edge.from);
    const to = at.get(edge.to);
    if (!from || !to) continue;
    const x1 = from.x + NODE_W;
    const y1 = from.y + NODE_H / 2;
    const x2 = to.x;
    const y2 = to.y + NODE_H / 2;
    const bend = Math.max(30, (x2 - x1) / 2);
    picture.append(svg("path", { class: "edge", "data-from": edge.from, "data-to": edge.to, "marker-end": "url(#arrow)",
      d: `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}` }));
  }
  for (const node of graph.nodes) {
    const { x, y } = at.get(node.id);
    const outside = node.execution_id && node.execution_id !== executionId;
    const target = href("browse", `executions/${node.execution_id || executionId}/${node.route_id}/${node.stage}/`);
    const counts = svg("text", { x: x + 10, y: y + 50, class: "node-counts" },
      `${counted(node.objects, "object")} · ${humanSize(node.bytes)}`);
    const group = svg("a", { href: target, class: "node" + (node.receiving ? " receiving" : "") + (outside ? " outside" : ""),
      "data-stage": node.id, "data-objects": node.objects, "data-bytes": node.bytes },
    svg("title", null, `${node.id}${outside ? ` (execution ${node.execution_id})` : ""}: ${counted(node.objects, "object")}, ${counted(node.bytes, "byte")}`
      + (node.receiving ? ", receiving writes" : "")),
    svg("rect", { x, y, width: NODE_W, height: NODE_H, rx: 6 }),
    svg("text", { x: x + 10, y: y + 19, class: "node-stage" }, clip(node.stage)),
    svg("text", { x: x + 10, y: y + 34, class: "node-route" }, clip(outside ? `${node.execution_id}: ${node.route_id}` : node.route_id)),
    counts);
    group.counts = counts;
    picture.append(group);
  }
  return picture;
}

// A stage table beside the picture: the same counts, readable and copyable.
export function stageTable(executionId, graph) {
  const own = graph.nodes.filter((node) => !node.execution_id || node.execution_id === executionId);
  const routes = new Map();
  for (const node of own) {
    const total = routes.get(node.route_id) || { objects: 0, bytes: 0 };
    routes.set(node.route_id, { objects: total.objects + node.objects, bytes: total.bytes + node.bytes });
  }
  const rows = [];
  for (const [route, total] of [...routes].sort()) {
    rows.push(h("tr", { class: "route-total", dataset: { route } },
      h("td", { class: "key" }, h("a", { href: href("browse", `executions/${executionId}/${route}/`) }, route + "/")),
      h("td", { class: "num" }, String(total.objects)), h("td", { class: "num" }, humanSize(total.bytes))));
    for (const node of own.filter((one) => one.route_id === route)) {
      rows.push(h("tr", { dataset: { stage: node.id } },
        h("td", { class: "key indent" }, h("a", { href: href("browse", `executions/${executionId}/${node.id}/`) }, node.stage + "/")),
        h("td", { class: "num" }, String(node.objects)), h("td", { class: "num" }, humanSize(node.bytes))));
    }
  }
  return h("table", { id: "stage-sizes" }, h("thead", null, h("tr", null, h("th", null, "Route / stage"),
    h("th", { class: "num" }, "Objects"), h("th", { class: "num" }, "Size"))), h("tbody", null, rows));
}
