// Health: what needs an operator. Calls settled fetch_failed in the last day (the listing, one
// bounded page), and pushed events that ran out of attempts among the latest calls, each with its
// redeliver action. The enrichment dead-letter queue has no HTTP route: the CLI's `redrive` moves it.

import { explain } from "../api.js";
import { badge, confirmAction, fill, h, notice, time, when } from "../dom.js";

const DAY_MS = 24 * 3600 * 1000;
// Failed events are found call by call (the API lists events per call): this many calls, newest first.
const SCANNED_CALLS = 50;

export function healthPage({ api, main, failed }) {
  const failedCalls = h("div", {}, notice("Loading…"));
  const failedEvents = h("div", {}, notice("Not checked yet."));
  const progress = h("p", { class: "hint" }); // progress while scanning; not announced call by call
  const scanned = h("div", { role: "status" }); // announced once, when the scan ends
  const again = h("button", { type: "button", class: "secondary", onclick: () => scanEvents() }, "Check again");
  const messages = h("div", { "aria-live": "polite" });
  let cancelled = false;

  const loadCalls = async () => {
    try {
      const since = new Date(Date.now() - DAY_MS).toISOString();
      const page = (await api.listCalls({ status: "fetch_failed", since, limit: 100 })).data;
      fill(
        failedCalls,
        page.calls.length
          ? h(
              "ul",
              { class: "plain" },
              page.calls.map((c) => h("li", {}, h("a", { href: `#/calls/${encodeURIComponent(c.callId)}` }, c.providerName ?? c.callId), ` — ${c.status ?? "no outcome"}, created ${when(c.createdAt)}`)),
              page.nextCursor ? h("li", {}, h("a", { href: "#/calls?field=status&value=fetch_failed" }, "More in the list…")) : null,
            )
          : notice("None in the last 24 hours.", "ok"),
      );
    } catch (err) {
      if (!failed(err)) fill(failedCalls, notice(explain(err, api.base), "error"));
    }
  };

  const scanEvents = async () => {
    again.disabled = true;
    try {
      await scan();
    } finally {
      again.disabled = false;
    }
  };

  const scan = async () => {
    fill(failedEvents);
    scanned.replaceChildren();
    let calls;
    try {
      calls = (await api.listCalls({ limit: SCANNED_CALLS })).data.calls;
    } catch (err) {
      if (!failed(err)) fill(failedEvents, notice(explain(err, api.base), "error"));
      return;
    }
    const found = [];
    for (const [i, c] of calls.entries()) {
      if (cancelled) return;
      fill(progress, `Checked ${i} of ${calls.length} calls…`);
      try {
        const t = (await api.timeline(c.callId)).data;
        found.push(...t.pushes.filter((p) => p.state === "failed" || p.state === "gone"));
      } catch (err) {
        if (failed(err)) return;
      }
    }
    progress.replaceChildren();
    fill(scanned, `Checked the latest ${calls.length} calls.`);
    fill(
      failedEvents,
      found.length
        ? h(
            "ul",
            { class: "plain" },
            found.map((p) =>
              h(
                "li",
                { "data-event-id": p.eventId },
                badge(p.state),
                " ",
                h("a", { href: `#/calls/${encodeURIComponent(p.callId)}` }, `${p.type} of ${p.callId}`),
                ` to ${p.url}, ${p.attempts.length} attempts, made ${when(p.createdAt)} `,
                h("button", { type: "button", class: "secondary", onclick: () => redeliver(p) }, "Redeliver…"),
              ),
            ),
          )
        : notice("No failed or gone events among them.", "ok"),
    );
  };

  const redeliver = async (p) => {
    const ok = await confirmAction("Redeliver this event?", `${p.type} ${p.eventId} is sent to ${p.url} again, with a new round of retries.`, "Redeliver");
    if (!ok) return;
    try {
      await api.redeliver(p.eventId);
      fill(messages, notice(`Event ${p.eventId} queued for delivery again.`, "ok"));
    } catch (err) {
      if (!failed(err)) fill(messages, notice(`Redeliver failed: ${explain(err, api.base)}`, "error"));
    }
  };

  fill(
    main,
    h("h1", {}, "Health"),
    messages,
    h("section", { "aria-labelledby": "ff-title" }, h("h2", { id: "ff-title" }, "Calls settled fetch_failed in the last 24 hours"), failedCalls),
    h(
      "section",
      { "aria-labelledby": "fe-title" },
      h("h2", { id: "fe-title" }, "Pushed events out of attempts"),
      h("p", { class: "hint" }, `Among the latest ${SCANNED_CALLS} calls (the API lists events call by call).`),
      again,
      progress,
      scanned,
      failedEvents,
    ),
    h(
      "section",
      { "aria-labelledby": "dlq-title" },
      h("h2", { id: "dlq-title" }, "Enrichment dead-letter queue"),
      h("p", {}, "Jobs that ran out of receives wait there; the HTTP API does not read queues. Move them back with ", h("code", {}, "ringback redrive"), " (", h("code", {}, "--dlq-url"), ", ", h("code", {}, "--queue-url"), "); the cleanup also re-drives stuck calls on its own."),
      h("p", { class: "hint" }, "Checked ", time(new Date().toISOString()), "."),
    ),
  );
  loadCalls();
  scanEvents();
  return () => {
    cancelled = true;
  };
}
