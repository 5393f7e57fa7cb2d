// One call: the record as a client sees it, its timeline (webhooks kept, enrichment milestones,
// pushed events and their attempts), and the actions the API allows (replay, redeliver, erase),
// each confirmed first. Live: the record is polled with If-None-Match (a 304 costs nothing) and
// the timeline with it, until the call is erased (its record then answers 410).

import { explain } from "../api.js";
import { badge, confirmAction, every, facts, fill, h, money, notice, redraw, seconds, time, when } from "../dom.js";

const SETTLED = new Set(["complete", "fetch_failed"]);

export function callPage({ api, main, failed }, callId) {
  let record = null;
  let etag = null;
  let timeline = null;
  let drawn = null;
  let erased = null; // the 410's message once the call is erased: nothing more to poll
  const messages = h("div", { class: "messages", "aria-live": "polite" }); // what an action did
  const pollError = h("div", {}); // why the page is not updating
  const body = h("div", {}, notice("Loading…"));

  const say = (text, kind) => fill(messages, notice(text, kind));

  const act = async (label, run, done) => {
    try {
      const resp = await run();
      say(done(resp.data), "ok");
    } catch (err) {
      if (!failed(err)) say(`${label} failed: ${explain(err, api.base)}`, "error");
    }
    refresh(true);
  };

  const replay = async () => {
    const kept = timeline?.webhooks?.kept ?? 0;
    const ok = await confirmAction(
      "Replay this call?",
      `The record is rebuilt from its ${kept} kept webhook${kept === 1 ? "" : "s"} through today's code and enriched again; a receiver that has its settling event gets the new record as call.updated.`,
      "Replay",
    );
    if (!ok) return;
    act("Replay", () => api.replay(callId), (d) => `Replay accepted: rebuilt from ${d.replayedEvents} webhook${d.replayedEvents === 1 ? "" : "s"}; enrichment runs again (${d.dataStatus}).`);
  };

  const redeliver = async (push) => {
    const ok = await confirmAction(
      "Redeliver this event?",
      `${push.type} ${push.eventId} is sent to ${push.url} again, with the same webhook-id and a new round of retries.`,
      "Redeliver",
    );
    if (!ok) return;
    act("Redeliver", () => api.redeliver(push.eventId), () => `Event ${push.eventId} queued for delivery again.`);
  };

  const erase = async () => {
    const ok = await confirmAction(
      "Erase this call?",
      "Its record, transcript, kept webhooks, pushed events and listing entry are deleted everywhere ringback wrote them, and its provider row and interaction log lose their texts. This cannot be undone.",
      "Erase",
    );
    if (!ok) return;
    act("Erase", () => api.erase(callId), (d) => {
      const parts = [`${d.historyItemsDeleted} history item${d.historyItemsDeleted === 1 ? "" : "s"} deleted`];
      if (d.providerRow) parts.push("provider row cleared");
      if (d.interactionLog) parts.push("interaction log cleared");
      return `Erased: ${parts.join(", ")}.`;
    });
  };
  const actions = { replay, redeliver, erase };

  let asked = 0; // a poll overtaken by an action's refresh must not roll the page back
  const refresh = async (force = false) => {
    if (erased) return;
    const mine = ++asked;
    let got = null;
    let history;
    try {
      try {
        got = await api.getCall(callId, force ? null : etag);
      } catch (err) {
        if (err.status === 410) {
          if (mine !== asked) return;
          erased = err.message;
          drawn = null;
          pollError.replaceChildren();
          redraw(body, erasedView(callId, erased));
          return;
        }
        if (err.status !== 404) throw err; // 404: the record expired; its history may remain
      }
      history = (await api.timeline(callId)).data;
    } catch (err) {
      if (mine !== asked || failed(err)) return;
      drawn = null; // draw again once it answers
      if (err.status === 404) {
        fill(body, notice(`No call ${callId} here (unknown, or its record and history have expired).`, "error"));
      } else {
        fill(pollError, notice(explain(err, api.base), "error"));
      }
      return;
    }
    if (mine !== asked) return;
    pollError.replaceChildren();
    if (got === null) {
      record = null;
      etag = null;
    } else if (got.status !== 304) {
      record = got.data;
      etag = got.etag;
    }
    timeline = history;
    const now = JSON.stringify([record, timeline]);
    if (now === drawn) return; // nothing new: leave focus and open sections as they are
    drawn = now;
    const rawOpen = body.querySelector("details.raw")?.open;
    redraw(body, view(record, timeline, actions));
    if (rawOpen) body.querySelector("details.raw").open = true;
  };

  fill(main, h("p", {}, h("a", { href: "#/calls" }, "← Calls")), messages, pollError, body);
  return every(2000, () => refresh());
}

/** The 410's message says when: "call … was erased at 2026-12-05T09:00:00.000Z". */
function erasedView(callId, message) {
  const at = /erased at (\S+)$/.exec(message ?? "")?.[1];
  return [
    h("h1", {}, "Call ", h("span", { class: "mono" }, callId)),
    notice(at ? `This call was erased at ${when(at)}.` : `This call was erased (${message}).`),
    h("p", { class: "hint" }, "Its record, transcript, history and listing entry are gone; webhooks that still arrive for it are ignored."),
  ];
}

function eraseButton(actions) {
  return h("button", { type: "button", class: "danger", "data-key": "erase", onclick: actions.erase }, "Erase…");
}

function view(r, t, actions) {
  if (!r) {
    // The record expired; its history outlives it.
    return [
      h("h1", {}, "Call ", h("span", { class: "mono" }, t.callId)),
      notice("The record has expired; its history is below."),
      h("div", { class: "actions" }, eraseButton(actions)),
      timelineView(t, actions),
    ];
  }
  const settled = SETTLED.has(r.dataStatus);
  return [
    h("h1", {}, r.provider?.name ?? "Call", " ", badge(r.dataStatus)),
    h("p", { class: "mono subtitle" }, r.callId),
    h(
      "div",
      { class: "actions" },
      h("button", { type: "button", class: "primary", "data-key": "replay", onclick: actions.replay, disabled: !settled, title: settled ? null : "A call still being worked on cannot be replayed" }, "Replay…"),
      eraseButton(actions),
    ),
    h(
      "section",
      { "aria-labelledby": "record-title" },
      h("h2", { id: "record-title" }, "Record"),
      facts([
        ["Data status", badge(r.dataStatus)],
        ["Outcome", r.status],
        ["Call status", r.callStatus],
        ["Ended reason", r.endedReason],
        ["Duration", seconds(r.duration)],
        ["Cost", money(r.cost)],
        ["Created", time(r.createdAt)],
        ["Ended", r.endedAt ? time(r.endedAt) : null],
        ["Fetch attempts", String(r.fetchAttempts)],
        ["Fetch error", r.fetchError],
        ["Provider ID", r.providerId],
        ["Service request", r.serviceRequestId],
        ["Callback URL", r.callbackUrl],
      ]),
    ),
    h("section", { "aria-labelledby": "summary-title" }, h("h2", { id: "summary-title" }, "Summary"), h("p", {}, r.analysis?.summary ?? "—")),
    h(
      "section",
      { "aria-labelledby": "data-title" },
      h("h2", { id: "data-title" }, "Structured data"),
      r.analysis?.structuredData ? h("pre", { tabindex: 0 }, JSON.stringify(r.analysis.structuredData, null, 2)) : h("p", {}, "—"),
    ),
    h("section", { "aria-labelledby": "transcript-title" }, h("h2", { id: "transcript-title" }, "Transcript"), transcript(r)),
    timelineView(t, actions),
    h(
      "details",
      { class: "raw" },
      h("summary", {}, "Raw JSON"),
      h("h3", {}, "Record"),
      h("pre", { tabindex: 0 }, JSON.stringify(r, null, 2)),
      h("h3", {}, "Timeline"),
      h("pre", { tabindex: 0 }, JSON.stringify(t, null, 2)),
    ),
  ];
}

function transcript(r) {
  if (r.messages?.length) {
    return h(
      "ol",
      { class: "transcript" },
      r.messages.map((m) => h("li", { class: `role-${m.role === "user" ? "user" : "bot"}` }, h("strong", {}, `${m.role}: `), m.message)),
    );
  }
  return r.transcript ? h("pre", { class: "wrap", tabindex: 0 }, r.transcript) : h("p", {}, "—");
}

const MOMENT = {
  "record.created": () => "Record created",
  "record.first_webhook": () => "First webhook",
  "record.fetched": (m) => `Enriched from Vapi (attempt ${m.fetchAttempts}${m.fetchError ? `: ${m.fetchError}` : ""})`,
  "record.updated": (m) => `Record updated (${m.dataStatus})`,
  "webhook.received": (m) => `Webhook ${m.messageType} kept (${m.outcome}, ${m.auth}, ${m.bytes} bytes)`,
  "push.made": (m) => `Event ${m.type} made (${m.eventId})`,
  "push.attempt": (m) => `Delivery attempt ${m.attempt} of ${m.eventId}: ${m.status ?? "no answer"} in ${m.latencyMs} ms${m.error ? ` (${m.error})` : ""}`,
};

function timelineView(t, actions) {
  const notKept = t.webhooks?.notKept ? ` (${t.webhooks.notKept} more counted, not kept)` : "";
  return [
    h(
      "section",
      { "aria-labelledby": "timeline-title" },
      h("h2", { id: "timeline-title" }, "Timeline"),
      h("p", { class: "hint" }, `${t.webhooks?.kept ?? 0} webhooks kept${notKept}.`),
      h(
        "ol",
        { class: "timeline" },
        t.timeline.map((m) => h("li", { "data-what": m.what }, time(m.at), " ", (MOMENT[m.what] ?? (() => m.what))(m))),
      ),
    ),
    h(
      "section",
      { "aria-labelledby": "pushes-title" },
      h("h2", { id: "pushes-title" }, "Pushed events"),
      t.pushes.length ? t.pushes.map((p) => pushView(p, actions)) : h("p", {}, "None: the call has no callback URL, or nothing was pushed yet."),
    ),
  ];
}

function pushView(p, actions) {
  const canRedeliver = p.state !== "pending";
  return h(
    "article",
    { class: "push", "data-event-id": p.eventId },
    h("h3", {}, p.type, " ", badge(p.state)),
    facts([
      ["Event ID", h("span", { class: "mono" }, p.eventId)],
      ["Receiver", p.url],
      ["Made", time(p.createdAt)],
      ["Next attempt", p.nextAttemptAt ? time(p.nextAttemptAt) : null],
    ]),
    h(
      "table",
      { class: "attempts" },
      h("caption", {}, `Attempts of ${p.eventId}`),
      h("thead", {}, h("tr", {}, ["#", "At", "Status", "Latency", "Error"].map((c) => h("th", { scope: "col" }, c)))),
      h(
        "tbody",
        {},
        p.attempts.map((a) =>
          h("tr", {}, h("td", {}, String(a.attempt)), h("td", {}, time(a.at)), h("td", {}, a.status ?? "no answer"), h("td", {}, `${a.latencyMs} ms`), h("td", {}, a.error ?? "—")),
        ),
      ),
    ),
    h(
      "button",
      { type: "button", class: "secondary", "data-key": `redeliver-${p.eventId}`, disabled: !canRedeliver, onclick: () => actions.redeliver(p), title: canRedeliver ? null : "Still being delivered" },
      "Redeliver…",
    ),
  );
}
