// An execution's Retention section: who depends on it through lineage and what it depends
// on; the delete dry run (what would go, what would break); and the delete itself, only
// after an explicit confirmation. Force is a separate box, offered only when the plan is
// blocked or the execution is running, because forcing breaks someone else's lineage.
import { api } from "./api.js";
import { clear, counted, errorBox, h, humanSize, time } from "./dom.js";
import { href } from "./router.js";

// The server's plan actions (factflow_storage.retention.plan).
const BLOCKED = "blocked by lineage";
const RUNNING = "refused: running";
const RESUME = "resume";
const ALREADY = "already deleted";
const SHOWN = 50;

const link = (view, arg) => h("a", { href: href(view, arg) }, arg);

// rows: {execution_id, key, parent[, parent_execution]}; `outward`: this execution's
// objects naming another's (depends on), else another's naming this one's (dependants).
function refTable(id, rows, outward) {
  if (!rows.length) return h("p", { id, class: "muted" }, "None known.");
  const more = rows.length - SHOWN;
  return h("div", null, h("table", { id },
    h("thead", null, h("tr", null, h("th", null, "Execution"), h("th", null, outward ? "Parent object" : "Object"),
      h("th", null, outward ? "Named by" : "Names"))),
    h("tbody", null, rows.slice(0, SHOWN).map((ref) => {
      const other = outward ? ref.parent_execution : ref.execution_id;
      return h("tr", { dataset: { execution: other, key: ref.key } },
        h("td", { class: "key" }, link("execution", other)),
        h("td", { class: "key" }, link("object", outward ? ref.parent : ref.key)),
        h("td", { class: "key" }, link("object", outward ? ref.key : ref.parent)));
    }))), more > 0 ? h("p", { class: "muted" }, `and ${more} more`) : null);
}

function depsPart(executionId) {
  const node = h("div", { id: "deps", "aria-busy": "true" }, h("p", { class: "muted" }, "Looking up lineage…"));
  api.deps(executionId).then((deps) => {
    clear(node).append(
      h("h3", null, "Depended on by"), refTable("deps-dependants", deps.dependants, false),
      h("h3", null, "Depends on"), refTable("deps-depends-on", deps.depends_on, true));
    node.dataset.state = "ready";
  }, (err) => {
    clear(node).append(err.status === 404 ? h("p", { class: "muted" }, "No lineage to show.") : errorBox(err));
    node.dataset.state = "error";
  }).finally(() => node.removeAttribute("aria-busy"));
  return node;
}

function planFacts(row) {
  const fact = (name, label, value) => [h("dt", { class: "muted" }, label), h("dd", { dataset: { fact: name } }, value)];
  return h("dl", { class: "row", id: "plan-facts" },
    fact("objects", "Objects", String(row.objects)),
    fact("bytes", "Size", `${humanSize(row.bytes)} (${counted(row.bytes, "byte")})`),
    fact("journal_markers", "Journal markers", String(row.journal_markers)),
    fact("archive_jobs", "Archive jobs", String(row.archive_jobs)),
    fact("action", "Action", row.action));
}

function deletedNote(record) {
  const gone = record.deleted || {};
  return h("p", { id: "deletion-record", dataset: { state: record.state } },
    record.state === "deleted" ? "Deleted " : "Deletion started ", time(record.finished_at || record.started_at),
    ` by ${record.requested_by || "unknown"}: ${counted(gone.objects ?? 0, "object")}, ${humanSize(gone.bytes ?? 0)}`,
    record.forced ? " (forced)" : "", ".");
}

// `record`: the execution record (null when there is none); `onDeleted(row)` after a
// confirmed delete.
export function retentionPanel(executionId, record, onDeleted) {
  const node = h("section", { class: "panel", id: "retention", "aria-label": "Retention",
    dataset: { execution: executionId, state: "idle" } }, h("h2", null, "Retention"));
  if (!record) {
    const note = h("p", { class: "muted" }, "No execution record.");
    api.deletions().then(({ deletions }) => {
      const found = deletions.find((item) => item.execution_id === executionId);
      if (found) note.replaceWith(deletedNote(found));
    }, () => {});
    node.append(note);
    return node;
  }
  if (record.status === "deleting") {
    node.append(h("p", { id: "deleting-note", class: "error" }, "Being deleted since ", time(record.deleting_since),
      record.status_before ? ` (it was ${record.status_before})` : "", ". Plan the deletion to finish it."));
  }
  const planButton = h("button", { type: "button", id: "retention-plan" }, "Plan deletion");
  const status = h("span", { id: "retention-text", class: "muted", role: "status" });
  const plan = h("div", { id: "retention-plan-result" });
  const lineage = h("div", null, h("h3", null, "Lineage across executions"), depsPart(executionId));
  node.append(h("div", { class: "row" }, planButton, status), plan, lineage);
  const setState = (state, text = "") => { node.dataset.state = state; status.textContent = text; };

  const confirmed = async (force) => {
    setState("deleting", "Deleting…");
    clear(plan);
    try {
      const answer = await api.deleteExecution(executionId, { confirm: true, force });
      const row = answer.executions.find((item) => item.execution_id === executionId) || answer.executions[0];
      if (!row.deleted) {  // another deleter holds it (the row says who), or it was gone already
        setState("refused");
        planButton.disabled = false;
        plan.append(h("p", { id: "retention-busy", class: "error" }, `Not deleted: ${row.action}.`));
        return;
      }
      const gone = row.deleted;
      setState("deleted");
      plan.append(h("p", { id: "retention-done" }, `Deleted ${counted(gone.objects, "object")}, ${humanSize(gone.bytes)}. `,
        h("a", { href: href("executions") }, "Back to executions")));
      planButton.disabled = true;
      lineage.remove();
      if (onDeleted) onDeleted(row);
    } catch (err) {
      setState("refused");
      planButton.disabled = false;
      plan.append(errorBox(err));
    }
  };

  const showPlan = (row) => {
    const blocked = row.action === BLOCKED || row.action === RUNNING;
    const parts = [planFacts(row)];
    if (row.dependants.length) {
      parts.push(h("h3", null, "What would break"), h("p", { class: "muted" },
        row.dependants.length === 1
          ? "1 object of another execution names this execution's objects in its lineage."
          : `${row.dependants.length} objects of other executions name this execution's objects in their lineage.`),
      refTable("plan-dependants", row.dependants, false));
    }
    if (row.action === ALREADY) {
      parts.push(h("p", { class: "muted" }, "Already deleted; nothing to do."));
      clear(plan).append(...parts);
      return;
    }
    const force = h("input", { type: "checkbox", id: "retention-force" });
    const deleteButton = h("button", { type: "button", id: "retention-delete", class: "danger", disabled: blocked },
      row.action === RESUME ? "Finish the deletion…" : "Delete…");
    if (blocked) {
      parts.push(h("p", { class: "error", id: "retention-blocked" }, row.action === RUNNING
        ? "Refused: the execution is running; its writers would fail."
        : "Blocked: other executions depend on it (above)."),
      h("label", { class: "force", for: "retention-force" }, force,
        row.action === RUNNING ? " Force: delete it although it is still running"
          : ` Force: delete it anyway and break the lineage of ${counted(row.dependants.length, "object")}`));
      force.addEventListener("change", () => { deleteButton.disabled = !force.checked; });
    }
    const ask = h("div", { id: "retention-confirm", class: "confirm", hidden: true, role: "alertdialog",
      "aria-labelledby": "retention-question" });
    deleteButton.addEventListener("click", () => {
      const forced = blocked && force.checked;
      const yes = h("button", { type: "button", id: "retention-confirm-yes", class: "danger" },
        forced ? "Yes, force the delete" : "Yes, delete permanently");
      const no = h("button", { type: "button", id: "retention-cancel" }, "Cancel");
      yes.addEventListener("click", () => confirmed(forced));
      no.addEventListener("click", () => { ask.hidden = true; deleteButton.disabled = blocked && !force.checked;
        setState("planned"); deleteButton.focus(); });
      clear(ask).append(h("p", { id: "retention-question" }, `Delete ${executionId} permanently: ${counted(row.objects, "object")}, `
        + `${humanSize(row.bytes)}${forced ? ", breaking other executions' lineage" : ""}? This cannot be undone.`),
      h("div", { class: "row" }, yes, no));
      ask.hidden = false;
      deleteButton.disabled = true;
      setState("confirming");
      no.focus();
    });
    parts.push(h("div", { class: "row" }, deleteButton), ask);
    clear(plan).append(...parts);
  };

  planButton.addEventListener("click", async () => {
    planButton.disabled = true;
    setState("planning", "Planning… (lists the execution once)");
    clear(plan);
    try {
      const answer = await api.deleteExecution(executionId);
      const row = answer.executions.find((item) => item.execution_id === executionId) || answer.executions[0];
      setState("planned", "Dry run: nothing deleted.");
      showPlan(row);
    } catch (err) {
      setState("error");
      plan.append(errorBox(err));
    }
    planButton.disabled = false;
  });
  return node;
}
