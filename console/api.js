// The console speaks only ringback's documented HTTP API (openapi.json), to this runner or to a
// deployment. The token lives in sessionStorage: it goes with the tab, never into a URL.

const KEY_BASE = "ringback.console.base";
const KEY_TOKEN = "ringback.console.token";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** What a person should read for a failed request. */
export function explain(err, base) {
  if (!(err instanceof ApiError)) return String(err?.message ?? err);
  if (err.status === 401) {
    return "The API token was refused (401). Check it: ringback-local prints its token when it starts; a deployment's is its API_TOKEN.";
  }
  if (err.status === 0) return `Cannot reach ${base || "this runner"}: ${err.message}`;
  return `${err.message} (${err.status}${err.code ? ` ${err.code}` : ""})`;
}

export class Api {
  /** `base`: the API's origin ("" for the page's own), without a trailing slash. */
  constructor(base, token) {
    this.base = base.replace(/\/+$/, "");
    this.token = token;
  }

  static fromSession() {
    const token = sessionStorage.getItem(KEY_TOKEN);
    return token === null ? null : new Api(sessionStorage.getItem(KEY_BASE) ?? "", token);
  }

  save() {
    sessionStorage.setItem(KEY_BASE, this.base);
    sessionStorage.setItem(KEY_TOKEN, this.token);
  }

  static forget() {
    sessionStorage.removeItem(KEY_TOKEN);
  }

  /** Whether this is ringback-local's own API (its development routes are there too). */
  get local() {
    return this.base === "";
  }

  /** `{status, data, etag}`; throws ApiError for anything but 2xx and 304. */
  async request(method, path, { body, headers = {}, query } = {}) {
    const url = new URL(this.base + path, location.href);
    for (const [k, v] of Object.entries(query ?? {})) {
      if (v !== null && v !== undefined && v !== "") url.searchParams.set(k, v);
    }
    const init = { method, headers: { authorization: `Bearer ${this.token}`, ...headers } };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers["content-type"] = "application/json";
    }
    let resp;
    try {
      resp = await fetch(url, init);
    } catch (e) {
      throw new ApiError(0, null, e.message || "the request failed (network or CORS)");
    }
    if (resp.status === 304) return { status: 304, data: null, etag: resp.headers.get("etag") };
    const text = await resp.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      // not JSON: reported below with the status
    }
    if (!resp.ok) {
      const problem = json?.error ?? {};
      throw new ApiError(resp.status, problem.code ?? null, problem.message ?? (text.slice(0, 200) || resp.statusText));
    }
    return { status: resp.status, data: json?.data ?? json, etag: resp.headers.get("etag") };
  }

  listCalls(query) {
    return this.request("GET", "/api/v1/vapi/calls", { query });
  }

  getCall(id, etag) {
    return this.request("GET", `/api/v1/vapi/calls/${encodeURIComponent(id)}`, {
      headers: etag ? { "if-none-match": etag } : {},
    });
  }

  timeline(id) {
    return this.request("GET", `/api/v1/vapi/calls/${encodeURIComponent(id)}/events`);
  }

  replay(id) {
    return this.request("POST", `/api/v1/vapi/calls/${encodeURIComponent(id)}/replay`);
  }

  /** Erases the call everywhere ringback wrote it; a repeat answers the same erasedAt. */
  erase(id) {
    return this.request("DELETE", `/api/v1/vapi/calls/${encodeURIComponent(id)}`);
  }

  /** Exact counts of the calls created in a window (whole hours, at most 31 days), by data status and
   * outcome; calls overdue; queue depths. 404 on a deployment without the route or a call index. */
  stats(query) {
    return this.request("GET", "/api/v1/vapi/stats", { query });
  }

  redeliver(eventId) {
    return this.request("POST", `/api/v1/vapi/callbacks/${encodeURIComponent(eventId)}/redeliver`);
  }

  placeCall(request, idempotencyKey) {
    return this.request("POST", "/api/v1/vapi/calls", {
      body: request,
      headers: { "idempotency-key": idempotencyKey },
    });
  }

  /** ringback-local's receiver for pushed events. */
  received() {
    return this.request("GET", "/dev/callbacks");
  }
}
