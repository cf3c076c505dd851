/**
 * The JavaScript client of tailored's REST API: recommendations, similar items and
 * events, from a web page or from Node 20+. A plain ES module without dependencies
 * (`fetch` does the requests); see README.md.
 *
 * @example
 * import { Tailored } from "./tailored/index.js";
 * const tailored = new Tailored({ baseUrl: "https://reco.shop.example", token, userId });
 * const answer = await tailored.recommend({ k: 8, placement: "home" });
 * tailored.impressions(answer);                  // what was shown, for attribution
 * tailored.track("click", answer.items[0].item_id,
 *                { recommendationId: answer.recommendation_id, position: 1 });
 *
 * @module tailored
 */

/** Browsers allow 64 KiB of `keepalive` request bodies in flight; a batch stays below. */
const KEEPALIVE_BYTES = 60_000;
/** Events per request at most (the service takes up to `max_batch_events`, 10,000). */
const MAX_BATCH = 500;
/** The service's bounds on an event (src/tailored/schema.py), checked when tracked. */
const MAX_ID_LENGTH = 256;
const MAX_EVENT_VALUE = 1_000_000;
const MAX_CONTEXT_KEYS = 64;
const MAX_CONTEXT_KEY_LENGTH = 64;
const MAX_CONTEXT_TEXT = 1_024;
const MAX_SAFE_INTEGER = 2 ** 53;
const EVENT_TYPE = /^[a-z][a-z0-9_]{0,31}$/;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;
/** An anonymous visitor's events kept for the merge at `identify`: the newest, this recent. */
const HISTORY_EVENTS = 100;
const HISTORY_DAYS = 30;
const MAX_BACKOFF_MS = 60_000;
const STORAGE_KEYS = {
  anonymousId: "tailored.anonymousId",
  history: "tailored.anonymousHistory",
  pending: "tailored.pendingEvents",
  sessionId: "tailored.sessionId",
};

/** Option names of each method, and the query or body field each becomes. */
const FIELD = {
  k: "k", placement: "placement", filter: "filter", boost: "boost", exclude: "exclude",
  context: "context", explain: "explain", newArrivals: "new_arrivals", explore: "explore",
  diversity: "diversity", novelty: "novelty", maxPerCategory: "max_per_category",
  revenue: "revenue", model: "model", kind: "kind", category: "category", days: "days",
  sessionId: "session_id",
};
const SELECTION = ["k", "filter", "boost", "exclude", "context"];
const KNOBS = ["placement", "explain", "newArrivals", "explore", "diversity", "novelty",
  "maxPerCategory", "revenue", "model"];
const OPTIONS = {
  constructor: ["baseUrl", "token", "userId", "sessionId", "batchSize", "flushInterval",
    "maxQueue", "timeout", "storage", "fetch", "onError"],
  recommend: [...SELECTION, ...KNOBS],
  session: [...SELECTION, ...KNOBS, "sessionId"],
  similar: [...SELECTION, "kind"],
  popular: [...SELECTION, "category", "days"],
  track: ["recommendationId", "position", "value", "context"],
  impressions: ["context"],
};

/**
 * A non-2xx answer of the service: its HTTP `status` and `detail` (a sentence, or for a
 * malformed request a list of `{loc, msg}` naming the fields).
 */
export class TailoredError extends Error {
  /**
   * @param {number} status
   * @param {unknown} detail
   * @param {number | null} [retryAfter] seconds, from the `Retry-After` header (429, 503)
   */
  constructor(status, detail, retryAfter = null) {
    super(`tailored answered ${status}: ${describe(detail)}`);
    this.name = "TailoredError";
    /** @type {number} */
    this.status = status;
    /** @type {unknown} */
    this.detail = detail;
    /** @type {number | null} */
    this.retryAfter = retryAfter;
  }
}

/**
 * @typedef {string | ((userId: string) => string | Promise<string>)} TokenSource
 * A user token (`tu1....`) or an API key; or a function the client calls (with the
 * current user id) for one, again when the service answers 401 (an expired token).
 *
 * @typedef {{ getItem(key: string): string | null, setItem(key: string, value: string): void,
 *             removeItem(key: string): void }} KeyValueStorage
 *
 * @typedef {Record<string, string | number | boolean | null>} Context
 *
 * @typedef {object} TailoredOptions
 * @property {string} baseUrl Where the service answers, e.g. `https://reco.shop.example`.
 * @property {TokenSource} [token] Sent as `Authorization: Bearer`; none for an open service.
 * @property {string} [userId] The known user; without it an anonymous visitor (an id kept
 *   in `storage`).
 * @property {string} [sessionId] Sent with each event; default: one per browser tab.
 * @property {number} [batchSize] Events that trigger a send at once (default 20).
 * @property {number} [flushInterval] Milliseconds an event waits at most (default 5000).
 * @property {number} [maxQueue] Events kept while the service is unreachable (default 1000;
 *   the oldest are dropped beyond, through `onError`).
 * @property {number} [timeout] Milliseconds a request may take (default 10000; 0: none).
 * @property {KeyValueStorage | null} [storage] Where the anonymous id and history are kept
 *   (default `localStorage` when there is one; null: memory only).
 * @property {typeof fetch} [fetch] The `fetch` to use (default the global one).
 * @property {(error: Error, events: TrackedEvent[]) => void} [onError] Called with the
 *   events dropped: refused by the service (4xx but 401, 408, 429) or beyond `maxQueue`.
 *   Default: a console warning.
 *
 * @typedef {object} TrackedEvent An event as sent to `POST /events`.
 * @property {string} event_id
 * @property {string} user_id
 * @property {string} item_id
 * @property {string} event_type
 * @property {number} [value]
 * @property {string} [timestamp]
 * @property {string} session_id
 * @property {Context} context
 *
 * @typedef {{ item_id: string, score: number, rank: number, reason?: string | null,
 *             explored?: boolean | null, new_arrival?: boolean | null }} RecommendedItem
 * @typedef {{ recommendation_id: string, user_id: string | null,
 *             model: { name: string, version: number | null },
 *             placement: { name: string, version: number } | null,
 *             experiment: { experiment_id: string, variant: string } | null,
 *             items: RecommendedItem[] }} Recommendations
 * @typedef {{ item_id: string, score: number, rank: number }} ScoredItem
 * @typedef {{ item_id: string, items: ScoredItem[] }} SimilarItems
 * @typedef {{ item_ids: string[], items: ScoredItem[] }} SimilarToItems
 * @typedef {{ category: string | null, days: number, items: ScoredItem[] }} PopularItems
 */

/** The client: one per page (or per user, on a server). */
export class Tailored {
  #baseUrl;
  /** @type {TokenSource | null} */
  #token;
  /** @type {{ userId: string, value: string } | null} */
  #tokenCache = null;
  #userId;
  #anonymous;
  #sessionId;
  /** @type {KeyValueStorage} */
  #storage;
  #fetch;
  #batchSize;
  #flushInterval;
  #maxQueue;
  #timeout;
  #onError;
  /** @type {TrackedEvent[]} */
  #queue = [];
  /** @type {TrackedEvent[]} */
  #inflight = [];
  /** @type {ReturnType<typeof setTimeout> | null} */
  #timer = null;
  /** @type {Promise<void>} */
  #sending = Promise.resolve();
  #failures = 0;
  #retryAt = 0;
  /** @type {Array<() => void>} */
  #unlisten = [];
  #closed = false;

  /** @param {TailoredOptions} options */
  constructor(options) {
    checkOptions(options, OPTIONS.constructor, "new Tailored");
    const { baseUrl, token, userId, sessionId, storage, fetch: fetchImpl, onError } = options;
    if (typeof baseUrl !== "string" || !/^https?:\/\/[^/]/.test(baseUrl)) {
      throw new TypeError(`new Tailored: baseUrl must be the service's http(s) address, ` +
        `e.g. "https://reco.shop.example"; got ${JSON.stringify(baseUrl)}`);
    }
    this.#baseUrl = baseUrl.replace(/\/+$/, "");
    this.#token = checkToken(token, "new Tailored");
    this.#batchSize = positive(options.batchSize ?? 20, "batchSize");
    this.#flushInterval = positive(options.flushInterval ?? 5000, "flushInterval");
    this.#maxQueue = positive(options.maxQueue ?? 1000, "maxQueue");
    this.#timeout = positive(options.timeout ?? 10_000, "timeout", true);
    this.#fetch = fetchImpl ?? ((url, init) => globalThis.fetch(url, init));
    this.#onError = onError ?? ((error, events) => console.warn(
      `tailored: ${events.length} event(s) not sent: ${error.message}`));
    this.#storage = storage === undefined
      ? webStorage("localStorage") ?? memoryStorage()
      : storage ?? memoryStorage();
    if (userId === undefined || userId === null) {
      this.#anonymous = true;
      this.#userId = this.#storage.getItem(STORAGE_KEYS.anonymousId) ?? this.#newAnonymousId();
    } else {
      this.#anonymous = false;
      this.#userId = checkId(userId, "new Tailored: userId");
    }
    this.#sessionId = sessionId === undefined ? tabSessionId() : checkId(sessionId, "sessionId");
    this.#restorePending();
    this.#listenForPageHide();
  }

  /** The user events and recommendations are for: the known user's id, or the
   * anonymous visitor's. */
  get userId() {
    return this.#userId;
  }

  /** The anonymous visitor's id while nobody is identified, else null. */
  get anonymousId() {
    return this.#anonymous ? this.#userId : null;
  }

  /** Sent as `session_id` with each event (baskets, bought-together). */
  get sessionId() {
    return this.#sessionId;
  }

  /** Events tracked and not yet acknowledged by the service. */
  get queued() {
    return this.#queue.length + this.#inflight.length;
  }

  // ---- reading --------------------------------------------------------------------------

  /**
   * `GET /recommendations/{userId}`: the top items for the current user.
   *
   * @param {{ k?: number, placement?: string, filter?: string, boost?: string[],
   *   exclude?: string[], context?: Context, explain?: boolean, newArrivals?: number,
   *   explore?: number, diversity?: number, novelty?: number, maxPerCategory?: number,
   *   revenue?: number, model?: string }} [options]
   * @returns {Promise<Recommendations>}
   */
  recommend(options = {}) {
    const query = toQuery(options, OPTIONS.recommend, "recommend");
    return this.#request("GET", `/recommendations/${encodeURIComponent(this.#userId)}`,
      { query });
  }

  /**
   * Items like one item (`GET /items/{itemId}/similar`) or like several at once, a cart
   * (`POST /items/similar`).
   *
   * @param {string | string[]} itemIds
   * @param {{ k?: number, kind?: "model" | "content" | "co_views" | "bought_together",
   *   filter?: string, boost?: string[], exclude?: string[], context?: Context }} [options]
   * @returns {Promise<SimilarItems | SimilarToItems>}
   */
  similar(itemIds, options = {}) {
    if (Array.isArray(itemIds)) {
      const body = toBody(options, OPTIONS.similar, "similar");
      body.items = itemIds.map((id) => checkId(id, "similar: item id"));
      return this.#request("POST", "/items/similar", { body });
    }
    const itemId = checkId(itemIds, "similar: itemId");
    const query = toQuery(options, OPTIONS.similar, "similar");
    return this.#request("GET", `/items/${encodeURIComponent(itemId)}/similar`, { query });
  }

  /**
   * `POST /recommendations/session`: items for what a visitor looked at (oldest first),
   * without a stored user.
   *
   * @param {string[]} items
   * @param {{ k?: number, sessionId?: string, placement?: string, filter?: string,
   *   boost?: string[], exclude?: string[], context?: Context, explain?: boolean,
   *   newArrivals?: number, explore?: number, diversity?: number, novelty?: number,
   *   maxPerCategory?: number, revenue?: number, model?: string }} [options]
   * @returns {Promise<Recommendations>}
   */
  session(items, options = {}) {
    if (!Array.isArray(items)) {
      throw new TypeError("session: items must be a list of item ids, oldest first");
    }
    const body = toBody(options, OPTIONS.session, "session");
    body.items = items.map((id) => checkId(id, "session: item id"));
    body.session_id ??= this.#sessionId;
    return this.#request("POST", "/recommendations/session", { body });
  }

  /**
   * `GET /popular`: the items with the most events in the last `days`.
   *
   * @param {{ category?: string, k?: number, days?: number, filter?: string,
   *   boost?: string[], exclude?: string[], context?: Context }} [options]
   * @returns {Promise<PopularItems>}
   */
  popular(options = {}) {
    return this.#request("GET", "/popular", {
      query: toQuery(options, OPTIONS.popular, "popular") });
  }

  /**
   * `GET /trending`: the items whose events grew most in the last `days`.
   *
   * @param {{ category?: string, k?: number, days?: number, filter?: string,
   *   boost?: string[], exclude?: string[], context?: Context }} [options]
   * @returns {Promise<PopularItems>}
   */
  trending(options = {}) {
    return this.#request("GET", "/trending", {
      query: toQuery(options, OPTIONS.popular, "trending") });
  }

  // ---- events ---------------------------------------------------------------------------

  /**
   * Queue an event of the current user; it is sent in a batch (see README.md). Checked
   * against the service's bounds here, so a mistake throws at the call, not later.
   *
   * @param {string} type `view`, `click`, `add_to_cart`, `purchase`, `impression`
   *   (`rating` with a value; or a custom type of the `event_weights` setting)
   * @param {string} itemId
   * @param {{ recommendationId?: string | null, position?: number | null,
   *   value?: number | null, context?: Context | null }} [options] `recommendationId` and
   *   `position` (1-based) tie the event to the answer it came from
   *   (`context.recommendation_id`, `context.position`).
   * @returns {string} the event's id (a retry sends the same id: stored once)
   */
  track(type, itemId, options = {}) {
    checkOptions(options, OPTIONS.track, "track");
    if (this.#closed) {
      throw new Error("track: this client is closed");
    }
    if (typeof type !== "string" || !EVENT_TYPE.test(type)) {
      throw new TypeError(`track: ${JSON.stringify(type)} is not an event type; use view, ` +
        "click, add_to_cart, purchase, impression or rating (or a custom type: lower " +
        "case letters, digits and _, at most 32)");
    }
    /** @type {TrackedEvent} */
    const event = {
      event_id: randomHex(),
      user_id: this.#userId,
      item_id: checkId(itemId, "track: itemId"),
      event_type: type,
      session_id: this.#sessionId,
      context: eventContext(options),
    };
    const value = checkValue(options.value, type);
    if (value !== undefined) {
      event.value = value;
    }
    if (this.#anonymous && type !== "impression") {
      this.#remember(event);
    }
    this.#enqueue([event]);
    return event.event_id;
  }

  /**
   * Track an impression of each item of an answer, with its `recommendation_id` and its
   * rank as `position`, the exposure the service attributes clicks and purchases to.
   *
   * @param {{ recommendation_id?: string, items: Array<{ item_id: string, rank?: number }> }}
   *   answer what `recommend()`, `session()`, `similar()` or `popular()` answered
   * @param {{ context?: Context }} [options]
   * @returns {string[]} the events' ids
   */
  impressions(answer, options = {}) {
    checkOptions(options, OPTIONS.impressions, "impressions");
    if (!answer || !Array.isArray(answer.items)) {
      throw new TypeError("impressions: pass an answer of the service (with its items)");
    }
    return answer.items.map((item, index) => this.track("impression", item.item_id, {
      recommendationId: answer.recommendation_id ?? undefined,
      position: item.rank ?? index + 1,
      context: options.context,
    }));
  }

  /**
   * Send every queued event now. Resolves once the service acknowledged them (stored);
   * rejects with the first error: events the service refused are dropped (and given to
   * `onError`), events that may succeed later (network, 401, 408, 429, 5xx) stay queued
   * and are retried with a growing delay.
   *
   * @returns {Promise<void>}
   */
  flush() {
    const run = this.#sending.then(() => this.#drain());
    this.#sending = run.catch(() => {});
    return run;
  }

  // ---- who the user is ------------------------------------------------------------------

  /**
   * The anonymous visitor signed in as `userId`: what they did anonymously in this
   * browser (the last 100 events of 30 days, impressions aside) is sent again as the
   * known user's, under new event ids; from now on events and recommendations are the
   * known user's. The anonymous id's own events stay on the service as they are.
   *
   * @param {string} userId
   * @param {TokenSource} [token] the known user's token (or a function for one); may be
   *   left out when the client's token is a function or an API key
   * @returns {Promise<number>} how many anonymous events were merged
   */
  async identify(userId, token) {
    checkId(userId, "identify: userId");
    const next = token === undefined ? this.#token : checkToken(token, "identify");
    if (!this.#anonymous && userId === this.#userId) {
      this.#setToken(next);
      return 0;
    }
    if (token === undefined && isUserToken(this.#token)) {
      throw new TypeError("identify: pass the known user's token: the current one is bound " +
        "to the previous user");
    }
    await this.#sendBeforeSwitching();
    const history = this.#anonymous ? this.#history() : [];
    this.#userId = userId;
    this.#anonymous = false;
    this.#setToken(next);
    this.#storage.removeItem(STORAGE_KEYS.history);
    this.#enqueue(history.map((past) => ({
      ...past,
      event_id: randomHex(),
      user_id: userId,
      // A copy is history, not a new action: no second attribution to an answer.
      context: { ...withoutAttribution(past.context), merged_from_anonymous: true },
    })));
    if (history.length > 0) {
      await this.flush().catch(() => {}); // refused: given to onError; else retried
    }
    return history.length;
  }

  /**
   * Signed out: a new anonymous visitor (a new id, an empty history). Events queued for
   * the previous user are sent first.
   *
   * @param {TokenSource | null} [token] a token for the new visitor; default: the
   *   client's token when it is a function or an API key, else none
   * @returns {Promise<void>}
   */
  async reset(token) {
    await this.#sendBeforeSwitching();
    this.#storage.removeItem(STORAGE_KEYS.history);
    this.#anonymous = true;
    this.#userId = this.#newAnonymousId();
    this.#setToken(token === undefined
      ? (isUserToken(this.#token) ? null : this.#token)
      : checkToken(token, "reset"));
  }

  /**
   * A new credential for the same user, e.g. before the current token expires.
   *
   * @param {TokenSource | null} token
   */
  setToken(token) {
    this.#setToken(checkToken(token, "setToken"));
  }

  /**
   * Send what is queued and stop: no timer, no page listeners; `track` throws after.
   *
   * @returns {Promise<void>}
   */
  async close() {
    this.#closed = true;
    for (const unlisten of this.#unlisten.splice(0)) {
      unlisten();
    }
    this.#clearTimer();
    await this.flush();
  }

  // ---- internals ------------------------------------------------------------------------

  #setToken(token) {
    this.#token = token ?? null;
    this.#tokenCache = null;
  }

  #newAnonymousId() {
    const id = `anon-${randomHex()}`;
    this.#storage.setItem(STORAGE_KEYS.anonymousId, id);
    return id;
  }

  /** @param {TrackedEvent[]} events */
  #enqueue(events) {
    this.#queue.push(...events);
    const over = this.#queue.length - this.#maxQueue;
    if (over > 0) {
      this.#onError(new Error(`more than ${this.#maxQueue} events waiting (maxQueue): the ` +
        "oldest are dropped"), this.#queue.splice(0, over));
    }
    if (this.#queue.length === 0 || this.#closed) {
      return;
    }
    if (this.#queue.length >= this.#batchSize && Date.now() >= this.#retryAt) {
      this.#clearTimer();
      this.flush().catch(() => {}); // the errors: onError, or queued for a retry
    } else if (this.#timer === null) {
      this.#schedule(Math.max(this.#flushInterval, this.#retryAt - Date.now()));
    }
  }

  #schedule(delay) {
    this.#clearTimer();
    const timer = setTimeout(() => {
      this.#timer = null;
      this.flush().catch(() => {});
    }, delay);
    if (typeof timer === "object" && typeof timer.unref === "function") {
      timer.unref(); // Node: a waiting batch does not keep the process alive (close() sends)
    }
    this.#timer = timer;
  }

  #clearTimer() {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
  }

  async #drain() {
    this.#clearTimer();
    let refused = null;
    while (this.#queue.length > 0) {
      const batch = takeBatch(this.#queue);
      this.#inflight = batch;
      try {
        await this.#request("POST", "/events", { body: batch });
        this.#failures = 0;
        this.#retryAt = 0;
      } catch (error) {
        if (isRetryable(error)) {
          this.#queue.unshift(...batch);
          this.#failures += 1;
          const wait = error instanceof TailoredError && error.retryAfter !== null
            ? error.retryAfter * 1000
            : this.#flushInterval * 2 ** (this.#failures - 1);
          this.#retryAt = Date.now() + Math.min(wait, MAX_BACKOFF_MS);
          if (!this.#closed) {
            this.#schedule(Math.min(wait, MAX_BACKOFF_MS));
          }
          throw error;
        }
        this.#onError(error, batch);
        refused ??= error;
      } finally {
        this.#inflight = [];
      }
    }
    if (refused !== null) {
      throw refused;
    }
  }

  /** Before the user changes: send the queue with the current credential; what cannot
   * be sent now cannot be later (another user's token), so it is dropped. */
  async #sendBeforeSwitching() {
    let sent = true;
    while (sent && this.queued > 0) { // events tracked meanwhile go as well
      sent = await this.flush().then(() => true, () => false);
    }
    const left = this.#queue.splice(0);
    if (left.length > 0) {
      this.#onError(new Error("the user changed before these events could be sent"), left);
    }
    this.#clearTimer();
  }

  /**
   * The page is being hidden (maybe closed): send what waits at once, as a `keepalive`
   * fetch, which outlives the page and, unlike `navigator.sendBeacon`, carries the
   * `Authorization` header. The request in flight is sent again with it (the event ids
   * make the copy harmless). What does not fit into one keepalive body is kept in
   * `storage` and sent by the next page of the same user.
   */
  #sendOnPageHide() {
    const waiting = [...this.#inflight, ...this.#queue.splice(0)];
    this.#inflight = []; // sent again once; a second hide event does not repeat it
    if (waiting.length === 0) {
      return;
    }
    this.#clearTimer();
    const batch = takeBatch(waiting);
    if (waiting.length > 0) {
      this.#storage.setItem(STORAGE_KEYS.pending, JSON.stringify(waiting));
    }
    this.#request("POST", "/events", { body: batch, keepalive: true }).catch((error) => {
      if (isRetryable(error)) { // the page stayed (a tab switch): send it later
        const queued = new Set(this.#queue.map((event) => event.event_id));
        this.#enqueue(batch.filter((event) => !queued.has(event.event_id)));
      } else {
        this.#onError(error, batch);
      }
    });
  }

  #listenForPageHide() {
    const onHide = () => this.#sendOnPageHide();
    const document = globalThis.document;
    if (document && typeof document.addEventListener === "function") {
      const onVisibility = () => {
        if (document.visibilityState === "hidden") {
          onHide();
        }
      };
      document.addEventListener("visibilitychange", onVisibility);
      this.#unlisten.push(() => document.removeEventListener("visibilitychange", onVisibility));
    }
    if (typeof globalThis.addEventListener === "function") {
      globalThis.addEventListener("pagehide", onHide);
      this.#unlisten.push(() => globalThis.removeEventListener("pagehide", onHide));
    }
  }

  #restorePending() {
    const pending = readJson(this.#storage, STORAGE_KEYS.pending);
    this.#storage.removeItem(STORAGE_KEYS.pending);
    if (Array.isArray(pending)) {
      // Only this user's: another user's events need another user's token.
      this.#enqueue(pending.filter((event) => event && event.user_id === this.#userId));
    }
  }

  /** @param {TrackedEvent} event */
  #remember(event) {
    const { event_id: _id, user_id: _user, ...kept } = event;
    const history = this.#history();
    history.push({ ...kept, timestamp: new Date().toISOString() });
    this.#storage.setItem(STORAGE_KEYS.history,
      JSON.stringify(history.slice(-HISTORY_EVENTS)));
  }

  /** The anonymous visitor's events kept for the merge, oldest first. */
  #history() {
    const history = readJson(this.#storage, STORAGE_KEYS.history);
    const since = Date.now() - HISTORY_DAYS * 86_400_000;
    return Array.isArray(history)
      ? history.filter((past) => past && Date.parse(past.timestamp) >= since)
      : [];
  }

  async #authorization() {
    const source = this.#token;
    if (typeof source !== "function") {
      return source;
    }
    const userId = this.#userId;
    if (this.#tokenCache?.userId !== userId) {
      const value = await source(userId);
      this.#tokenCache = { userId, value: checkToken(value, "the token function") };
    }
    return this.#tokenCache.value;
  }

  /**
   * @param {string} method
   * @param {string} path
   * @param {{ query?: URLSearchParams, body?: unknown, keepalive?: boolean }} [request]
   * @param {boolean} [again] whether this is the retry after a 401 with a fresh token
   */
  async #request(method, path, { query, body, keepalive = false } = {}, again = false) {
    const search = query?.toString();
    const headers = { accept: "application/json" };
    const token = await this.#authorization();
    if (token) {
      headers.authorization = `Bearer ${token}`;
    }
    /** @type {RequestInit} */
    const init = { method, headers, keepalive };
    if (body !== undefined) {
      headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    if (this.#timeout > 0 && typeof AbortSignal.timeout === "function") {
      init.signal = AbortSignal.timeout(this.#timeout);
    }
    const fetchImpl = this.#fetch;
    const response = await fetchImpl(`${this.#baseUrl}${path}${search ? `?${search}` : ""}`,
      init);
    if (response.status === 401 && typeof this.#token === "function" && !again) {
      await response.body?.cancel();
      this.#tokenCache = null; // expired: ask the function for a new one, once
      return this.#request(method, path, { query, body, keepalive }, true);
    }
    const text = await response.text();
    /** @type {any} */
    let data = text;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      // not JSON (a proxy's page): the text is the detail
    }
    if (!response.ok) {
      const detail = data !== null && typeof data === "object" && "detail" in data
        ? data.detail
        : String(data || response.statusText || "no detail").slice(0, 500);
      const retryAfter = Number.parseInt(response.headers.get("retry-after") ?? "", 10);
      throw new TailoredError(response.status, detail,
        Number.isFinite(retryAfter) ? retryAfter : null);
    }
    return data;
  }
}

// ---- helpers ------------------------------------------------------------------------------

function describe(detail) {
  if (typeof detail === "string") {
    return detail;
  }
  if (Array.isArray(detail)) {
    return detail.map((entry) => (entry && typeof entry === "object" && "msg" in entry
      ? `${(entry.loc ?? []).join(".")}: ${entry.msg}`
      : JSON.stringify(entry))).join("; ");
  }
  return JSON.stringify(detail);
}

/** Whether sending again later may succeed: no answer, or 401 (a token to renew), 408,
 * 429 and 5xx. */
function isRetryable(error) {
  if (!(error instanceof TailoredError)) {
    return true; // the network, a timeout: nothing was answered
  }
  return [401, 408, 429].includes(error.status) || error.status >= 500;
}

function isUserToken(token) {
  return typeof token === "string" && token.startsWith("tu1.");
}

/** The first events of `events` (removed from it) that fit one keepalive body. */
function takeBatch(events) {
  const encoder = new TextEncoder();
  let bytes = 2;
  let count = 0;
  while (count < events.length && count < MAX_BATCH) {
    const size = encoder.encode(JSON.stringify(events[count])).length + 1;
    if (count > 0 && bytes + size > KEEPALIVE_BYTES) {
      break;
    }
    bytes += size;
    count += 1;
  }
  return events.splice(0, count);
}

function checkOptions(options, allowed, where) {
  if (options === null || typeof options !== "object" || Array.isArray(options)) {
    throw new TypeError(`${where}: options must be an object`);
  }
  const unknown = Object.keys(options).filter((name) => !allowed.includes(name));
  if (unknown.length > 0) {
    throw new TypeError(`${where}: unknown option ${unknown.map((n) => `"${n}"`).join(", ")}` +
      `; the options are ${allowed.join(", ")}`);
  }
}

function checkToken(token, where) {
  if (token === undefined || token === null || typeof token === "function") {
    return token ?? null;
  }
  if (typeof token !== "string" || token.trim() === "" || /\s/.test(token)) {
    throw new TypeError(`${where}: a token is a user token (tu1....) or an API key, as text ` +
      "without spaces, or a function returning one");
  }
  return token;
}

function checkId(id, what) {
  if (typeof id !== "string" || id.trim() === "" || id.length > MAX_ID_LENGTH ||
      CONTROL.test(id)) {
    throw new TypeError(`${what} must be text of 1 to ${MAX_ID_LENGTH} characters without ` +
      `control characters; got ${JSON.stringify(id)?.slice(0, 80)}`);
  }
  return id;
}

function positive(value, name, zeroAllowed = false) {
  if (!Number.isFinite(value) || value < 0 || (value === 0 && !zeroAllowed)) {
    throw new TypeError(`new Tailored: ${name} must be a positive number; got ${value}`);
  }
  return value;
}

function checkValue(value, type) {
  if (value === undefined || value === null) {
    if (type === "rating") {
      throw new TypeError("track: a rating needs its value, e.g. { value: 4.5 }");
    }
    return undefined;
  }
  if (typeof value !== "number" || !Number.isFinite(value) ||
      Math.abs(value) > MAX_EVENT_VALUE) {
    throw new RangeError(`track: value must be a finite number of at most ${MAX_EVENT_VALUE} ` +
      `either side of 0; got ${value}`);
  }
  if (type === "rating" && value < 0) {
    throw new RangeError(`track: a rating is at least 0; got ${value}`);
  }
  return value;
}

/**
 * An event's context: the caller's, with the answer it came from.
 *
 * @param {{ context?: Context | null, recommendationId?: string | null,
 *   position?: number | null }} options
 * @returns {Context}
 */
function eventContext({ context, recommendationId, position }) {
  const merged = { ...(context ?? {}) };
  if (context !== undefined && context !== null && (typeof context !== "object" ||
      Array.isArray(context))) {
    throw new TypeError("track: context must be an object of text, numbers and booleans");
  }
  if (recommendationId !== undefined && recommendationId !== null) {
    merged.recommendation_id = checkId(recommendationId, "track: recommendationId");
  }
  if (position !== undefined && position !== null) {
    if (!Number.isInteger(position) || position < 1) {
      throw new RangeError(`track: position is a rank, 1 for the first; got ${position}`);
    }
    merged.position = position;
  }
  const keys = Object.keys(merged);
  if (keys.length > MAX_CONTEXT_KEYS) {
    throw new RangeError(`track: context has ${keys.length} keys; at most ` +
      `${MAX_CONTEXT_KEYS} are allowed`);
  }
  for (const key of keys) {
    const value = merged[key];
    if (key.length > MAX_CONTEXT_KEY_LENGTH || CONTROL.test(key)) {
      throw new RangeError(`track: context key ${JSON.stringify(key.slice(0, 80))} must be 1 ` +
        `to ${MAX_CONTEXT_KEY_LENGTH} characters without control characters`);
    }
    const ok = value === null || typeof value === "boolean" ||
      (typeof value === "number" && Number.isFinite(value) &&
        (!Number.isInteger(value) || Math.abs(value) <= MAX_SAFE_INTEGER)) ||
      (typeof value === "string" && value.length <= MAX_CONTEXT_TEXT);
    if (!ok) {
      throw new RangeError(`track: context value of ${JSON.stringify(key)} must be null, a ` +
        `boolean, a finite number or a text of at most ${MAX_CONTEXT_TEXT} characters`);
    }
  }
  return merged;
}

function withoutAttribution(context) {
  const { recommendation_id: _answer, position: _position, ...rest } = context ?? {};
  return rest;
}

/** Query parameters: lists repeat the parameter, `context` becomes `KEY:VALUE` each. */
function toQuery(options, allowed, where) {
  checkOptions(options, allowed, where);
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(options)) {
    if (value === undefined || value === null) {
      continue;
    }
    if (name === "context") {
      for (const [key, entry] of Object.entries(value)) {
        query.append("context", `${key}:${entry}`);
      }
    } else {
      for (const entry of Array.isArray(value) ? value : [value]) {
        query.append(FIELD[name], String(entry));
      }
    }
  }
  return query;
}

/** A JSON body: the options under the service's field names. */
function toBody(options, allowed, where) {
  checkOptions(options, allowed, where);
  /** @type {Record<string, unknown>} */
  const body = {};
  for (const [name, value] of Object.entries(options)) {
    if (value !== undefined && value !== null) {
      body[FIELD[name]] = (name === "boost" || name === "exclude") && !Array.isArray(value)
        ? [value] : value;
    }
  }
  return body;
}

function randomHex() {
  const bytes = new Uint8Array(16);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** `localStorage` or `sessionStorage` when usable (not in Node, not when blocked). */
function webStorage(name) {
  try {
    const storage = globalThis[name];
    if (storage && typeof storage.getItem === "function") {
      storage.setItem("tailored.probe", "1");
      storage.removeItem("tailored.probe");
      return storage;
    }
  } catch {
    // blocked (private mode, sandboxed frame): memory instead
  }
  return null;
}

/** @returns {KeyValueStorage} */
function memoryStorage() {
  const values = new Map();
  return {
    getItem: (key) => values.get(key) ?? null,
    setItem: (key, value) => void values.set(key, String(value)),
    removeItem: (key) => void values.delete(key),
  };
}

/** One id per browser tab (kept across its reloads), else one per client. */
function tabSessionId() {
  const storage = webStorage("sessionStorage");
  const id = storage?.getItem(STORAGE_KEYS.sessionId) ?? `s-${randomHex()}`;
  storage?.setItem(STORAGE_KEYS.sessionId, id);
  return id;
}

function readJson(storage, key) {
  try {
    return JSON.parse(storage.getItem(key) ?? "null");
  } catch {
    return null;
  }
}
