// Calls: newest first, live, filtered by one of status / provider / service request (the API takes
// one at a time) within a time window, a page at a time with the API's cursor, and counts by status:
// exact, from the stats route (the window widened to whole hours, the last 24 hours by default), or
// bounded ("100+") from listing pages where that route is missing or refuses the window.

import { explain } from "../api.js";
import { badge, every, fill, h, notice, redraw, when } from "../dom.js";

const DATA_STATUSES = ["pending", "partial", "fetching", "complete", "fetch_failed"];
const OUTCOMES = ["completed", "no_answer", "voicemail", "timeout", "error"];
const FIELDS = [
  ["", "All calls"],
  ["status", "Status"],
  ["providerId", "Provider ID"],
  ["serviceRequestId", "Service request ID"],
];
const PAGE = 20;
// Counting without the stats route asks one page of this size per status: bounded, whatever the
// number of calls.
const COUNT_CAP = 100;

export function callsPage({ api, main, query, failed }) {
  const filter = {
    field: query.get("field") ?? "",
    value: query.get("value") ?? "",
    since: query.get("since") ?? "",
    until: query.get("until") ?? "",
  };
  const cursors = [null]; // the cursor of each page seen: Newer goes back one
  // Not a live region: announcing every refresh would drown a screen reader.
  const status = h("p", { class: "updated" });
  let shown = null; // the page last drawn: a refresh that changes nothing keeps focus where it is
  // The API filters by one thing at a time: counts are of every call in the time range.
  const counts = h("ul", { class: "counts", "aria-label": "Calls by status in the time range" });
  const outcomes = h("ul", { class: "counts outcomes", "aria-label": "Calls by outcome in the time range", hidden: true });
  const countsNote = h("p", { class: "hint counts-note" });
  let statsRoute = true; // false once the API answered 404: this deployment has no stats
  const table = h("div", { class: "table-wrap" });
  const pager = h("nav", { class: "pager", "aria-label": "Pages" });

  const params = (extra) => {
    const q = { since: toIso(filter.since), until: toIso(filter.until), ...extra };
    if (filter.field && filter.value) q[filter.field] = filter.value;
    return q;
  };

  let asked = 0; // answers to older requests (a poll overtaken by a page change) are dropped
  const refresh = async () => {
    const mine = ++asked;
    let page;
    try {
      page = (await api.listCalls(params({ limit: PAGE, cursor: cursors.at(-1) }))).data;
    } catch (err) {
      if (mine !== asked || failed(err)) return;
      shown = null; // redraw the list once it answers again
      fill(table, notice(explain(err, api.base), "error"));
      return;
    }
    if (mine !== asked) return;
    fill(status, `Updated ${new Date().toLocaleTimeString()}: newest first, live.`);
    const drawn = JSON.stringify([cursors.length, page]);
    if (drawn === shown) return;
    shown = drawn;
    redraw(table, page.calls.length ? callTable(page.calls) : notice("No calls match."));
    redraw(
      pager,
      h("button", { type: "button", class: "secondary", "data-key": "newer", disabled: cursors.length === 1, onclick: newer }, "← Newer"),
      h("span", {}, `Page ${cursors.length}`),
      h("button", { type: "button", class: "secondary", "data-key": "older", disabled: !page.nextCursor, onclick: () => older(page.nextCursor) }, "Older →"),
    );
  };
  const newer = () => {
    cursors.pop();
    refresh();
  };
  const older = (cursor) => {
    cursors.push(cursor);
    refresh();
  };

  const countLink = (word, n) =>
    h("li", {}, h("a", { href: link({ ...filter, field: "status", value: word }), "data-key": `count-${word}` }, badge(word), " ", h("span", { class: "count" }, String(n))));

  /** Exact counts from the stats route; false when it cannot answer for this window. */
  const exactCounts = async (range) => {
    let stats;
    try {
      stats = (await api.stats(range)).data;
    } catch (err) {
      if (err.status === 404) statsRoute = false;
      if (failed(err) || err.status === 404 || err.status === 400) return false; // 400: a window it refuses (over 31 days)
      throw err;
    }
    const c = stats.calls;
    if (!c || c.unavailable !== undefined) return false;
    redraw(counts, DATA_STATUSES.map((word) => countLink(word, c.byDataStatus?.[word] ?? 0)));
    redraw(outcomes, OUTCOMES.map((word) => countLink(word, c.byOutcome?.[word] ?? 0)));
    outcomes.hidden = false;
    const calls = `${c.total} call${c.total === 1 ? "" : "s"}`;
    const span = `${when(c.since)} – ${when(c.until)}`;
    fill(countsNote, filter.since || filter.until ? `${calls} created ${span} (widened to whole hours).` : `${calls} created in the last 24 hours (${span}).`);
    return true;
  };

  const refreshCounts = async () => {
    const range = { since: toIso(filter.since), until: toIso(filter.until) };
    try {
      if (statsRoute && (await exactCounts(range))) return;
    } catch (err) {
      console.error(err); // counted from the listing below instead
    }
    const counted = await Promise.all(
      DATA_STATUSES.map(async (word) => {
        try {
          const page = (await api.listCalls({ ...range, status: word, limit: COUNT_CAP })).data;
          return [word, `${page.calls.length}${page.nextCursor ? "+" : ""}`];
        } catch (err) {
          failed(err);
          return [word, "?"];
        }
      }),
    );
    redraw(counts, counted.map(([word, n]) => countLink(word, n)));
    outcomes.hidden = true;
    fill(countsNote, `Counted from the listing, ${COUNT_CAP} at most each.`);
  };

  fill(
    main,
    h("h1", {}, "Calls"),
    filterForm(filter),
    counts,
    outcomes,
    countsNote,
    status,
    table,
    pager,
  );
  const stopList = every(2000, refresh);
  const stopCounts = every(10000, refreshCounts);
  return () => {
    stopList();
    stopCounts();
  };
}

function filterForm(filter) {
  const valueSlot = h("div", { class: "field" });
  const fieldSelect = h(
    "select",
    { id: "filter-field", name: "field" },
    FIELDS.map(([v, label]) => h("option", { value: v, selected: v === filter.field }, label)),
  );
  const renderValue = () => {
    const field = fieldSelect.value;
    if (field === "status") {
      fill(
        valueSlot,
        h("label", { for: "filter-value" }, "Status is"),
        h(
          "select",
          { id: "filter-value", name: "value" },
          h("optgroup", { label: "Data status" }, DATA_STATUSES.map((w) => h("option", { value: w, selected: w === filter.value }, w))),
          h("optgroup", { label: "Outcome" }, OUTCOMES.map((w) => h("option", { value: w, selected: w === filter.value }, w))),
        ),
      );
    } else if (field) {
      fill(
        valueSlot,
        h("label", { for: "filter-value" }, field === "providerId" ? "Provider ID is" : "Service request ID is"),
        h("input", { id: "filter-value", name: "value", value: filter.field === field ? filter.value : "", required: true }),
      );
    } else {
      valueSlot.replaceChildren();
    }
  };
  fieldSelect.addEventListener("change", renderValue);
  renderValue();
  const form = h(
    "form",
    {
      class: "filters",
      role: "search",
      "aria-label": "Filter calls",
      onsubmit: (ev) => {
        ev.preventDefault();
        const data = new FormData(form);
        location.hash = link({
          field: data.get("field") ?? "",
          value: (data.get("value") ?? "").toString().trim(),
          since: data.get("since") ?? "",
          until: data.get("until") ?? "",
        });
      },
    },
    h("div", { class: "field" }, h("label", { for: "filter-field" }, "Filter by"), fieldSelect),
    valueSlot,
    h("div", { class: "field" }, h("label", { for: "filter-since" }, "Created from"), h("input", { id: "filter-since", name: "since", type: "datetime-local", value: filter.since })),
    h("div", { class: "field" }, h("label", { for: "filter-until" }, "Created until"), h("input", { id: "filter-until", name: "until", type: "datetime-local", value: filter.until })),
    h("div", { class: "field buttons" }, h("button", { type: "submit", class: "primary" }, "Apply"), h("a", { href: "#/calls", class: "button secondary" }, "Clear")),
  );
  return form;
}

function link(filter) {
  const q = new URLSearchParams(Object.entries(filter).filter(([, v]) => v));
  const s = q.toString();
  return s ? `#/calls?${s}` : "#/calls";
}

/** A datetime-local value (the browser's time zone) as RFC 3339 for the API. */
function toIso(local) {
  if (!local) return "";
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? "" : d.toISOString();
}

function callTable(calls) {
  return h(
    "table",
    { class: "calls" },
    h("caption", { class: "sr-only" }, "Calls, newest first"),
    h(
      "thead",
      {},
      h("tr", {}, ["Created", "Provider", "Data", "Outcome", "Call", "Provider ID", "Service request", "Call ID"].map((c) => h("th", { scope: "col" }, c))),
    ),
    h(
      "tbody",
      {},
      calls.map((c) =>
        h(
          "tr",
          { "data-call-id": c.callId },
          h("td", { "data-label": "Created" }, when(c.createdAt)),
          h("td", { "data-label": "Provider" }, h("a", { href: `#/calls/${encodeURIComponent(c.callId)}`, "data-key": `call-${c.callId}` }, c.providerName ?? "(no name)")),
          h("td", { "data-label": "Data" }, badge(c.dataStatus)),
          h("td", { "data-label": "Outcome" }, c.status ?? "—"),
          h("td", { "data-label": "Call" }, c.callStatus),
          h("td", { "data-label": "Provider ID" }, c.providerId ?? "—"),
          h("td", { "data-label": "Service request" }, c.serviceRequestId ?? "—"),
          h("td", { "data-label": "Call ID", class: "mono" }, c.callId),
        ),
      ),
    ),
  );
}
