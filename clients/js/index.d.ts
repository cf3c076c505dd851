// Types of tailored's JavaScript client (index.js); see README.md.

/** A user token (`tu1....`) or an API key; or a function the client calls (with the current
 * user id) for one, and again when the service answers 401 (an expired token). */
export type TokenSource = string | ((userId: string) => string | Promise<string>);

/** What describes the moment: device, location, hour, ... */
export type Context = Record<string, string | number | boolean | null>;

export interface KeyValueStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/** An event as sent to `POST /events`. */
export interface TrackedEvent {
  event_id: string;
  user_id: string;
  item_id: string;
  event_type: string;
  value?: number;
  timestamp?: string;
  session_id: string;
  context: Context;
}

export interface TailoredOptions {
  /** Where the service answers, e.g. `https://reco.shop.example`. */
  baseUrl: string;
  /** Sent as `Authorization: Bearer`; none for an open service. Never an API key in a page. */
  token?: TokenSource | null;
  /** The known user; without it an anonymous visitor (an id kept in `storage`). */
  userId?: string | null;
  /** Sent with each event; default: one per browser tab. */
  sessionId?: string;
  /** Events that trigger a send at once (default 20). */
  batchSize?: number;
  /** Milliseconds an event waits at most before it is sent (default 5000). */
  flushInterval?: number;
  /** Events kept while the service is unreachable (default 1000; the oldest dropped beyond). */
  maxQueue?: number;
  /** Milliseconds a request may take (default 10000; 0: no limit). */
  timeout?: number;
  /** Where the anonymous id and history are kept (default `localStorage`; null: memory). */
  storage?: KeyValueStorage | null;
  /** The `fetch` to use (default the global one). */
  fetch?: typeof fetch;
  /** Called with events dropped: refused by the service, or beyond `maxQueue`. */
  onError?: (error: Error, events: TrackedEvent[]) => void;
}

/** What a list may be narrowed and shaped by (the same on every route). */
export interface Selection {
  k?: number;
  /** An expression over item attributes and `context`, e.g. `price < 100`. */
  filter?: string;
  /** `EXPRESSION:FACTOR` each, e.g. `in_stock == true:1.2`. */
  boost?: string | string[];
  exclude?: string | string[];
  context?: Context;
}

export interface RecommendOptions extends Selection {
  placement?: string;
  /** Add a `reason` to each item (a user token of this user, or a `write` key). */
  explain?: boolean;
  newArrivals?: number;
  explore?: number;
  diversity?: number;
  novelty?: number;
  maxPerCategory?: number;
  revenue?: number;
  /** A version number or model name (an `admin` key only). */
  model?: string;
}

export interface SessionOptions extends RecommendOptions {
  /** Recorded in the served log; default: the client's `sessionId`. */
  sessionId?: string;
}

export type SimilarityKind = "model" | "content" | "co_views" | "bought_together";

export interface SimilarOptions extends Selection {
  kind?: SimilarityKind;
}

export interface PopularOptions extends Selection {
  category?: string;
  /** The window counted, in days back from now (default 7). */
  days?: number;
}

export interface TrackOptions {
  /** The `recommendation_id` of the answer the event came from. */
  recommendationId?: string | null;
  /** The item's rank in that answer, 1 for the first. */
  position?: number | null;
  /** A rating's stars, a price, a count. */
  value?: number | null;
  context?: Context | null;
}

export interface ScoredItem {
  item_id: string;
  score: number;
  rank: number;
}

export interface RecommendedItem extends ScoredItem {
  reason?: string | null;
  explored?: boolean | null;
  new_arrival?: boolean | null;
}

export interface Recommendations {
  recommendation_id: string;
  user_id: string | null;
  model: { name: string; version: number | null };
  placement: { name: string; version: number } | null;
  experiment: { experiment_id: string; variant: string } | null;
  items: RecommendedItem[];
}

export interface SimilarItems {
  item_id: string;
  items: ScoredItem[];
}

export interface SimilarToItems {
  item_ids: string[];
  items: ScoredItem[];
}

export interface PopularItems {
  category: string | null;
  days: number;
  items: ScoredItem[];
}

/** A non-2xx answer: its status and the service's `detail`. */
export class TailoredError extends Error {
  constructor(status: number, detail: unknown, retryAfter?: number | null);
  readonly name: "TailoredError";
  readonly status: number;
  /** A sentence, or for a malformed request a list of `{loc, msg, ...}` naming fields. */
  readonly detail: unknown;
  /** Seconds from `Retry-After` (429, 503), else null. */
  readonly retryAfter: number | null;
}

export class Tailored {
  constructor(options: TailoredOptions);
  /** The known user's id, or the anonymous visitor's. */
  readonly userId: string;
  /** The anonymous visitor's id while nobody is identified, else null. */
  readonly anonymousId: string | null;
  readonly sessionId: string;
  /** Events tracked and not yet acknowledged. */
  readonly queued: number;

  recommend(options?: RecommendOptions): Promise<Recommendations>;
  similar(itemId: string, options?: SimilarOptions): Promise<SimilarItems>;
  similar(itemIds: string[], options?: SimilarOptions): Promise<SimilarToItems>;
  session(items: string[], options?: SessionOptions): Promise<Recommendations>;
  popular(options?: PopularOptions): Promise<PopularItems>;
  trending(options?: PopularOptions): Promise<PopularItems>;

  /** Queue an event; returns its id. Throws at once when it breaks the service's bounds. */
  track(type: string, itemId: string, options?: TrackOptions): string;
  /** An impression per item of an answer, with its recommendation id and rank. */
  impressions(
    answer: { recommendation_id?: string | null; items: Array<{ item_id: string; rank?: number }> },
    options?: { context?: Context },
  ): string[];
  /** Send what is queued; rejects with the first error (refused events are dropped). */
  flush(): Promise<void>;

  /** The anonymous visitor signed in: their events here are sent again as `userId`'s. */
  identify(userId: string, token?: TokenSource): Promise<number>;
  /** Signed out: a new anonymous visitor. */
  reset(token?: TokenSource | null): Promise<void>;
  setToken(token: TokenSource | null): void;
  /** Send what is queued and stop listening; `track` throws after. */
  close(): Promise<void>;
}
