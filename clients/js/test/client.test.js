// The client against a real tailored server: a sample shop made, trained and served
// (`tailored demo --no-serve`, `tailored keys create`, `tailored serve`) in a temporary
// directory, with API keys and user tokens on. Needs the project's venv (.venv, or
// TAILORED_CLI=path/to/tailored); without it the tests skip, loudly.

import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer as createHttpServer } from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { Tailored, TailoredError } from "../index.js";

const REPO = fileURLToPath(new URL("../../..", import.meta.url));
const CLI = resolve(process.env.TAILORED_CLI ?? join(REPO, ".venv", "bin", "tailored"));
const CLIENT = fileURLToPath(new URL("../index.js", import.meta.url));
const CHROMIUM = ["chromium", "chromium-browser", "google-chrome"].map((name) => process.env.PATH
  ?.split(":").map((dir) => join(dir, name)).find((path) => existsSync(path))).find(Boolean);
const SHOP = "https://shop.example";
const USER = "u00001";

const missing = existsSync(CLI) ? false : `no tailored command at ${CLI}: run \`make\` ` +
  "(it builds .venv) or set TAILORED_CLI";
if (missing) {
  console.warn(`\n*** JS CLIENT TESTS SKIPPED: ${missing} ***\n`);
}

/** @type {{ url: string, admin: string, write: string, output: string[],
 *           stop: () => Promise<void> }} */
let service;

async function freePort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function startService(origins) {
  const root = await mkdtemp(join(tmpdir(), "tailored-js-"));
  const inherited = Object.entries(process.env).filter(([name]) => !name.startsWith("TAILORED_"));
  const env = {
    ...Object.fromEntries(inherited),
    TAILORED_STORE_URL: `sqlite:///${join(root, "tailored.db")}`,
    TAILORED_MODEL_DIR: join(root, "models"),
    TAILORED_MODEL: "item_knn",
    TAILORED_USER_TOKEN_SECRET: "js-client-tests-".repeat(4),
    TAILORED_RATE_LIMIT_PER_USER_PER_SECOND: "0", // the tests ask faster than a page does
    TAILORED_CORS_ALLOWED_ORIGINS: JSON.stringify(origins),
    NO_COLOR: "1",
  };
  const run = (...args) => promisify(execFile)(CLI, args, { cwd: root, env })
    .then(({ stdout }) => stdout);
  await run("demo", "--no-serve", "--users", "50", "--items", "20", "--events", "1000",
    "--data-dir", join(root, "sample_shop"));
  const secret = (stdout) => stdout.split("\n").find((line) => line.startsWith("tk_"));
  const [admin, write] = await Promise.all(["admin", "write"].map(
    (scope) => run("keys", "create", "--name", `js-${scope}`, "--scope", scope).then(secret)));
  const port = await freePort();
  const server = spawn(CLI, ["serve", "--port", String(port)], { cwd: root, env });
  const output = [];
  server.stdout.on("data", (chunk) => output.push(String(chunk)));
  server.stderr.on("data", (chunk) => output.push(String(chunk)));
  const exited = new Promise((resolve) => server.once("exit", resolve));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (server.exitCode !== null) {
      throw new Error(`tailored serve exited with ${server.exitCode}:\n${output.join("")}`);
    }
    const health = await fetch(`${url}/health`).catch(() => null);
    if (health?.ok) {
      break;
    }
    if (Date.now() > deadline) {
      server.kill();
      throw new Error(`tailored serve did not answer /health in 30 s:\n${output.join("")}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const stop = async () => {
    server.kill("SIGTERM");
    await exited;
    await rm(root, { recursive: true, force: true });
  };
  return { url, admin, write, output, stop };
}

/** The shop's page: it loads the client as it is (no build step) and reports back. */
const PAGE = `<!doctype html><meta charset="utf-8"><title>a shop</title>
<script type="module">
import { Tailored } from "/index.js";
const params = new URLSearchParams(location.search);
const report = (result) => fetch("/result", { method: "POST", body: JSON.stringify(result) });
const failure = (error) => ({ name: error.name, status: error.status ?? null,
                              message: error.message });
try {
  const baseUrl = params.get("service"), userId = params.get("user");
  const client = new Tailored({ baseUrl, token: params.get("token"), userId,
                                flushInterval: 60000 });
  const answer = await client.recommend({ k: 3 });
  client.impressions(answer); // queued: the first POST /events (and its preflight) is
  const refused = await new Tailored({ baseUrl, userId, storage: null }).recommend()
    .then(() => null, failure);
  client.track("add_to_cart", answer.items[0].item_id,
               { recommendationId: answer.recommendation_id, position: 1 });
  await report({ answer, refused, queued: client.queued });
  location.href = "/gone";  // made on page hide, as the page goes
} catch (error) {
  await report({ error: failure(error) });
}
</script>`;

/** A page's origin: serves the page and the client, takes its report. */
async function startPageServer() {
  let reported;
  let gone;
  const report = new Promise((resolve) => { reported = resolve; });
  const left = new Promise((resolve) => { gone = resolve; });
  const server = createHttpServer(async (request, response) => {
    const path = new URL(request.url, "http://page").pathname;
    if (path === "/index.js") {
      response.writeHead(200, { "content-type": "text/javascript" });
      response.end(await readFile(CLIENT));
    } else if (path === "/page.html") {
      response.writeHead(200, { "content-type": "text/html" });
      response.end(PAGE);
    } else if (path === "/result") {
      let body = "";
      for await (const chunk of request) {
        body += chunk;
      }
      reported(JSON.parse(body));
      response.end();
    } else if (path === "/gone") {
      gone();
      response.writeHead(200, { "content-type": "text/html" });
      response.end("<!doctype html><title>another page</title>");
    } else {
      response.writeHead(404);
      response.end();
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const origin = `http://127.0.0.1:${server.address().port}`;
  const close = () => new Promise((resolve) => {
    server.closeAllConnections();
    server.close(resolve);
  });
  return { origin, report, left, close };
}

/** Open `url` in headless Chromium until `until` settles (at most 20 s). */
async function inChromium(url, until) {
  const profile = await mkdtemp(join(tmpdir(), "tailored-js-chromium-"));
  const browser = spawn(CHROMIUM, ["--headless", "--no-sandbox", "--disable-gpu",
    "--no-first-run", "--disable-extensions", `--user-data-dir=${profile}`, url],
  { stdio: "ignore", detached: true }); // its own process group: stopped whole below
  const exited = new Promise((resolve) => browser.once("exit", resolve));
  let timer;
  try {
    return await Promise.race([until, new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no report from ${url} in 20 s`)), 20_000);
    })]);
  } finally {
    clearTimeout(timer);
    process.kill(-browser.pid, "SIGTERM");
    await exited;
    await rm(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  }
}

/** What the shop's backend does for a signed-in visitor: a user token from a write key. */
async function issueToken(userId) {
  const response = await fetch(`${service.url}/users/${encodeURIComponent(userId)}/token`, {
    method: "POST",
    headers: { authorization: `Bearer ${service.write}`, "content-type": "application/json" },
    body: JSON.stringify({ ttl_seconds: 600 }),
  });
  assert.equal(response.status, 200, await response.clone().text());
  return (await response.json()).token;
}

/** Everything the service stores of a user (an admin's `GET /users/{id}/export`). */
async function exported(userId, { unknown } = {}) {
  const response = await fetch(`${service.url}/users/${encodeURIComponent(userId)}/export`,
    { headers: { authorization: `Bearer ${service.admin}` } });
  if (response.status === 404 && unknown !== undefined) {
    return unknown; // nothing stored of this user (yet)
  }
  assert.equal(response.status, 200, await response.clone().text());
  return response.json();
}

/** A fetch that records each call (and its answer) before answering. */
function recording(calls, { loseFirstEventsAnswer = false } = {}) {
  let lost = false;
  return async (url, init) => {
    const answered = fetch(url, init);
    // A copy for the test to read (cloned before the client reads the original).
    const call = { url: String(url), init, answer: answered.then((r) => r.clone()) };
    calls.push(call);
    const response = await answered;
    if (loseFirstEventsAnswer && !lost && call.url.endsWith("/events")) {
      lost = true; // the service stored the batch; its answer never arrives
      throw new TypeError("fetch failed (the connection dropped)");
    }
    return response;
  };
}

const eventPosts = (calls) => calls.filter((call) => call.url.endsWith("/events"));
const sentEvents = (call) => JSON.parse(call.init.body);
const later = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const unique = (prefix) => `${prefix}-${Math.random().toString(16).slice(2)}`;

describe("the client against a real server", { skip: missing }, () => {
  /** @type {Awaited<ReturnType<typeof startPageServer>>[]} */
  let pages = [];

  before(async () => {
    pages = await Promise.all([startPageServer(), startPageServer()]);
    service = await startService([SHOP, pages[0].origin]); // the second origin: not listed
  });

  after(async () => {
    await Promise.all([service?.stop(), ...pages.map((page) => page.close())]);
  });

  test("recommend answers the token's user with k ranked items", async () => {
    const client = new Tailored({ baseUrl: `${service.url}/`, token: await issueToken(USER),
      userId: USER, storage: null });

    const answer = await client.recommend({ k: 5, context: { device: "mobile" } });
    const first = answer.items[0].item_id;
    const narrowed = await client.recommend({ k: 3, exclude: [first], explain: true });

    assert.equal(answer.user_id, USER);
    assert.match(answer.recommendation_id, /^[0-9a-f]{32}$/);
    assert.deepEqual(answer.items.map((item) => item.rank), [1, 2, 3, 4, 5]);
    assert.equal(answer.model.name, "item_knn");
    assert.equal(narrowed.items.length, 3);
    assert.ok(!narrowed.items.some((item) => item.item_id === first));
    assert.ok(narrowed.items.every((item) => typeof item.reason === "string"));
    await client.close();
  });

  test("similar asks by GET for one item and by POST for several", async () => {
    const client = new Tailored({ baseUrl: service.url, token: await issueToken(USER),
      userId: USER, storage: null });

    const one = await client.similar("i00001", { k: 3 });
    const cart = await client.similar(["i00001", "i00002"], { k: 3, exclude: "i00003" });
    const byContent = await client.similar("i00001", { k: 2, kind: "content" });

    assert.equal(one.item_id, "i00001");
    assert.equal(one.items.length, 3);
    assert.ok(!one.items.some((item) => item.item_id === "i00001"));
    assert.deepEqual(cart.item_ids, ["i00001", "i00002"]);
    assert.ok(!cart.items.some((item) => ["i00001", "i00002", "i00003"].includes(item.item_id)));
    assert.equal(byContent.items.length, 2);
    await client.close();
  });

  test("session, popular and trending answer without a stored user's history", async () => {
    const client = new Tailored({ baseUrl: service.url, token: await issueToken(USER),
      userId: USER, storage: null, sessionId: "s-test" });

    const session = await client.session(["i00001", "i00002"], { k: 4 });
    const popular = await client.popular({ k: 3, days: 3650 });
    const trending = await client.trending({ k: 3, days: 3650 });

    assert.equal(session.user_id, null);
    assert.equal(session.items.length, 4);
    assert.ok(!session.items.some((item) => ["i00001", "i00002"].includes(item.item_id)));
    assert.equal(popular.items.length, 3);
    assert.ok(popular.items[0].score >= popular.items[2].score);
    assert.equal(trending.days, 3650);
    await client.close();
  });

  test("tracked events arrive in one batch, with ids and the answer they came from",
    async () => {
      const user = unique("tracked");
      const calls = [];
      const client = new Tailored({ baseUrl: service.url, token: await issueToken(user),
        userId: user, storage: null, batchSize: 100, flushInterval: 60_000,
        fetch: recording(calls) });

      const answer = await client.recommend({ k: 3 });
      const clicked = answer.items[0].item_id;
      const shown = client.impressions(answer);
      const click = client.track("click", clicked,
        { recommendationId: answer.recommendation_id, position: 1 });
      const purchase = client.track("purchase", clicked, { value: 19.9 });
      assert.equal(client.queued, 5);
      await client.flush();
      const stored = (await exported(user)).events;
      const next = await client.recommend({ k: 3 });

      assert.equal(client.queued, 0);
      assert.equal(eventPosts(calls).length, 1);
      assert.deepEqual(stored.map((event) => event.event_id).sort(),
        [...shown, click, purchase].sort());
      const impression = stored.find((event) => event.event_id === shown[1]);
      assert.equal(impression.event_type, "impression");
      assert.deepEqual(impression.context,
        { recommendation_id: answer.recommendation_id, position: 2 });
      assert.equal(stored.find((event) => event.event_id === purchase).value, 19.9);
      assert.ok(stored.every((event) => event.session_id === client.sessionId));
      // The next answer already counts the click: a seen item is not recommended again.
      assert.ok(!next.items.some((item) => item.item_id === clicked));
      await client.close();
    });

  test("a full batch is sent at once, a partial one after flushInterval", async () => {
    const user = unique("batched");
    const calls = [];
    const client = new Tailored({ baseUrl: service.url, token: await issueToken(user),
      userId: user, storage: null, batchSize: 3, flushInterval: 200, fetch: recording(calls) });

    for (const item of ["i00001", "i00002", "i00003"]) {
      client.track("view", item);
    }
    await later(50);
    const atOnce = eventPosts(calls).map((call) => sentEvents(call).length);
    client.track("view", "i00004");
    await later(100);
    const beforeInterval = eventPosts(calls).length;
    await later(400);
    const afterInterval = eventPosts(calls).map((call) => sentEvents(call).length);

    assert.deepEqual(atOnce, [3]);
    assert.equal(beforeInterval, 1);
    assert.deepEqual(afterInterval, [3, 1]);
    assert.equal((await exported(user)).counts.events, 4);
    await client.close();
  });

  test("a batch whose answer was lost is sent again and stored once", async () => {
    const user = unique("retried");
    const calls = [];
    const client = new Tailored({ baseUrl: service.url, token: await issueToken(user),
      userId: user, storage: null, batchSize: 100, flushInterval: 60_000,
      fetch: recording(calls, { loseFirstEventsAnswer: true }) });
    client.track("view", "i00001");
    client.track("add_to_cart", "i00001");

    await assert.rejects(client.flush(), /connection dropped/);
    assert.equal(client.queued, 2); // kept for a retry
    await client.flush();
    const [first, second] = eventPosts(calls);
    const receipts = [await (await first.answer).json(), await (await second.answer).json()];

    assert.deepEqual(sentEvents(first), sentEvents(second));
    assert.deepEqual(receipts.map((receipt) => [receipt.stored, receipt.duplicates]),
      [[2, 0], [0, 2]]);
    assert.equal((await exported(user)).counts.events, 2);
    assert.equal(client.queued, 0);
    await client.close();
  });

  test("events the service refuses are dropped and reported with its detail", async () => {
    const user = unique("refused");
    const dropped = [];
    const client = new Tailored({ baseUrl: service.url, token: await issueToken(user),
      userId: user, storage: null, batchSize: 100, flushInterval: 60_000,
      onError: (error, events) => dropped.push([error, events]) });
    client.track("wishlist", "i00001"); // well formed, but not a type the service weighs

    const error = await client.flush().catch((caught) => caught);

    assert.ok(error instanceof TailoredError);
    assert.equal(error.status, 422);
    assert.match(error.message, /event_type/);
    assert.ok(Array.isArray(error.detail));
    assert.equal(dropped.length, 1);
    assert.equal(dropped[0][1][0].event_type, "wishlist");
    assert.equal(client.queued, 0);
    await client.close();
  });

  test("on page hide the queue leaves at once, keepalive, with the Authorization header",
    async () => {
      const user = unique("hidden");
      const token = await issueToken(user);
      const calls = [];
      const page = Object.assign(new EventTarget(), { visibilityState: "visible" });
      globalThis.document = page;
      try {
        const client = new Tailored({ baseUrl: service.url, token, userId: user,
          storage: null, flushInterval: 60_000, fetch: recording(calls) });
        client.track("view", "i00001");
        client.track("click", "i00001");

        page.visibilityState = "hidden";
        page.dispatchEvent(new Event("visibilitychange"));
        await later(0);
        const [hide] = eventPosts(calls);
        const answer = await hide.answer;

        assert.equal(hide.init.keepalive, true);
        assert.equal(hide.init.headers.authorization, `Bearer ${token}`);
        assert.equal(answer.status, 201);
        assert.equal(client.queued, 0);
        assert.equal((await exported(user)).counts.events, 2);
        await client.close();
        page.dispatchEvent(new Event("visibilitychange")); // closed: no longer listening
        assert.equal(eventPosts(calls).length, 1);
      } finally {
        delete globalThis.document;
      }
    });

  test("identify merges the anonymous visitor's events into the known user", async () => {
    const storage = new Map();
    const localStorage = {
      getItem: (key) => storage.get(key) ?? null,
      setItem: (key, value) => storage.set(key, value),
      removeItem: (key) => storage.delete(key),
    };
    // The shop's backend hands out tokens: for an anonymous id to anyone, for a known
    // user's id after sign-in.
    const tokenFor = (userId) => issueToken(userId);
    const visitor = new Tailored({ baseUrl: service.url, token: tokenFor,
      storage: localStorage, batchSize: 100, flushInterval: 60_000 });
    const anonymous = visitor.userId;
    visitor.track("view", "i00004");
    visitor.track("add_to_cart", "i00005");
    visitor.track("impression", "i00006"); // exposure, not history: not merged
    await visitor.flush();
    const known = unique("known");

    const merged = await visitor.identify(known);
    const before = (await exported(anonymous)).events;
    const after = (await exported(known)).events;
    const answer = await visitor.recommend({ k: 10 });

    assert.match(anonymous, /^anon-[0-9a-f]{32}$/);
    assert.equal(new Tailored({ baseUrl: service.url, storage: localStorage }).userId,
      anonymous, "the anonymous id is kept in storage");
    assert.equal(merged, 2);
    assert.equal(visitor.userId, known);
    assert.equal(visitor.anonymousId, null);
    assert.equal(before.length, 3, "the anonymous id's events stay as they were");
    assert.deepEqual(after.map((event) => [event.item_id, event.event_type]),
      [["i00004", "view"], ["i00005", "add_to_cart"]]);
    assert.ok(after.every((event) => event.context.merged_from_anonymous === true));
    assert.ok(!after.some((event) => before.some((old) => old.event_id === event.event_id)));
    assert.equal(answer.user_id, known);
    assert.ok(!answer.items.some((item) => ["i00004", "i00005"].includes(item.item_id)),
      "the merged history counts for the known user's recommendations");
    assert.equal(storage.get("tailored.anonymousHistory"), undefined);

    await visitor.reset();
    assert.notEqual(visitor.anonymousId, anonymous);
    assert.match(visitor.anonymousId, /^anon-/);
    await visitor.close();
  });

  test("an expired token is asked for again through the token function", async () => {
    const asked = [];
    const token = async (userId) => {
      asked.push(userId);
      return asked.length === 1 ? "tu1.eyJzdWIiOiJ4IiwiZXhwIjoxfQ.expired" : issueToken(userId);
    };
    const client = new Tailored({ baseUrl: service.url, token, userId: USER, storage: null });

    const answer = await client.recommend({ k: 2 });

    assert.equal(answer.items.length, 2);
    assert.deepEqual(asked, [USER, USER]);
    await client.close();
  });

  test("errors carry the status and the service's detail", async () => {
    const token = await issueToken(USER);
    const anonymous = new Tailored({ baseUrl: service.url, userId: USER, storage: null });
    const other = new Tailored({ baseUrl: service.url, token, userId: "u00002", storage: null });
    const client = new Tailored({ baseUrl: service.url, token, userId: USER, storage: null });

    const expect = async (promise, status, detail) => {
      const error = await promise.then(() => null, (caught) => caught);
      assert.ok(error instanceof TailoredError, `expected a TailoredError, got ${error}`);
      assert.equal(error.status, status);
      assert.match(error.message, detail);
      return error;
    };
    await expect(anonymous.recommend(), 401, /API key/);
    await expect(other.recommend(), 403, /bound to user 'u00001'/);
    await expect(client.similar("no-such-item"), 404, /unknown to the serving model/);
    const malformed = await expect(client.recommend({ k: 0 }), 422, /query\.k: /);
    assert.deepEqual(malformed.detail[0].loc, ["query", "k"]);

    assert.throws(() => client.recommend({ newArrival: 0.2 }), /unknown option "newArrival"/);
    assert.throws(() => client.track("View!", "i00001"), TypeError);
    assert.throws(() => client.track("rating", "i00001"), /needs its value/);
    assert.throws(() => client.track("view", "i00001", { value: 1e7 }), RangeError);
    assert.throws(() => client.track("view", "x".repeat(257)), TypeError);
    assert.throws(() => client.track("click", "i00001", { position: 0 }), /a rank, 1 for/);
    assert.doesNotThrow(() => client.track("view", "i00001",
      { value: null, recommendationId: null, position: null, context: null })); // left out
    assert.throws(() => client.track("view", "i1", { context: { t: "x".repeat(1025) } }),
      RangeError);
    await Promise.all([anonymous.close(), other.close(), client.close()]);
  });

  test("in a browser, a listed origin's page reads answers and errors, and its last " +
    "events leave with it", { skip: CHROMIUM ? false : "no chromium on PATH" }, async () => {
    const user = unique("browser");
    const [listed, unlisted] = pages;
    const query = new URLSearchParams({ service: service.url, token: await issueToken(user),
      user });

    const stored = async () => {
      await listed.left; // the page navigated away: its pagehide sends the queued event
      for (let tries = 0; tries < 50; tries += 1) { // the browser stays open meanwhile
        const { events } = await exported(user, { unknown: { events: [] } });
        if (events.some((event) => event.event_type === "add_to_cart")) {
          return events;
        }
        await later(100);
      }
      return (await exported(user, { unknown: { events: [] } })).events;
    };
    const [result, events] = await inChromium(`${listed.origin}/page.html?${query}`,
      Promise.all([listed.report, stored()]));
    const blocked = await inChromium(`${unlisted.origin}/page.html?${query}`, unlisted.report);

    assert.equal(result.error, undefined, JSON.stringify(result.error));
    assert.equal(result.answer.items.length, 3);
    assert.equal(result.refused.name, "TailoredError"); // the 401 is readable: CORS headers
    assert.equal(result.refused.status, 401);
    assert.match(result.refused.message, /API key/);
    assert.equal(result.queued, 4);
    assert.deepEqual(events.map((event) => event.event_type).sort(),
      ["add_to_cart", "impression", "impression", "impression"]);
    assert.equal(blocked.error.name, "TypeError", "the browser blocks an unlisted origin");
  });

  test("the service answers preflights of the listed origin only", async () => {
    const preflight = (origin) => fetch(`${service.url}/events`, { method: "OPTIONS",
      headers: { origin, "access-control-request-method": "POST",
        "access-control-request-headers": "authorization,content-type" } });

    const listed = await preflight(SHOP);
    const other = await preflight("https://elsewhere.example");

    assert.equal(listed.status, 200);
    assert.equal(listed.headers.get("access-control-allow-origin"), SHOP);
    assert.equal(other.status, 400);
    assert.equal(other.headers.get("access-control-allow-origin"), null);
  });
});
