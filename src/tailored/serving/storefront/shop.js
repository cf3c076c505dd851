// The demo shop: every row is a tailored placement or block, read with the JavaScript
// client (clients/js, served here as tailored.js); clicks, carts and purchases go back as
// events, so the next page is personalised by what the visitor just did.
import { Tailored } from "./tailored.js";

const ROW = 8;
const TREND_DAYS = 60; // the sample shop's events end weeks before today
const page = document.getElementById("page");
const store = {
  get(key, fallback) {
    try { return JSON.parse(localStorage.getItem(`tailored-demo.${key}`)) ?? fallback; }
    catch { return fallback; }
  },
  set(key, value) { localStorage.setItem(`tailored-demo.${key}`, JSON.stringify(value)); },
};

function newVisitor() {
  const id = `visitor-${crypto.randomUUID().slice(0, 8)}`;
  store.set("visitor", id);
  store.set("cart", []);
  store.set("clicked", {});
  return id;
}

const visitor = store.get("visitor", null) ?? newVisitor();
let client;
let token = null;

async function connect() {
  // The shop's backend issues a token bound to this visitor (when the service has a
  // user-token secret); an open demo service needs none.
  const answer = await fetch(`/demo/shop/token?visitor=${encodeURIComponent(visitor)}`);
  ({ token } = answer.ok ? await answer.json() : { token: null });
  client = new Tailored({ baseUrl: location.origin, userId: visitor, token: token ?? undefined });
}

async function items(ids) {
  if (!ids.length) return new Map();
  const query = ids.map((id) => `ids=${encodeURIComponent(id)}`).join("&");
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const answer = await fetch(`/items?${query}`, { headers });
  if (!answer.ok) throw new Error(`GET /items: ${answer.status}`);
  return new Map((await answer.json()).map((item) => [item.item_id, item]));
}

function favouriteCategory(fallback) {
  const clicked = Object.entries(store.get("clicked", {}));
  clicked.sort((a, b) => b[1] - a[1]);
  return clicked.length ? clicked[0][0] : fallback;
}

function remember(item) {
  const clicked = store.get("clicked", {});
  for (const category of item.categories ?? []) clicked[category] = (clicked[category] ?? 0) + 1;
  store.set("clicked", clicked);
}

// ---- rendering ----------------------------------------------------------------------

function card(item, shown, position, answer) {
  const node = document.createElement("article");
  node.className = "card";
  node.dataset.itemId = item.item_id;
  node.dataset.categories = (item.categories ?? []).join(" ");
  const price = item.attributes?.price;
  node.innerHTML = `<div class="title"></div><div class="meta"></div>
    <div class="price"></div><div class="why"></div>`;
  node.querySelector(".title").textContent = item.title || item.item_id;
  node.querySelector(".meta").textContent = (item.categories ?? []).join(", ");
  node.querySelector(".price").textContent = price != null ? `€${Number(price).toFixed(2)}` : "";
  node.querySelector(".why").textContent = shown.reason ?? "";
  if (shown.new_arrival) {
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = "new";
    node.append(badge);
  }
  node.addEventListener("click", async () => {
    remember(item);
    // Only a list's answer attributes a click (its id, the item's position in it).
    await client.track("click", item.item_id, answer ? {
      recommendationId: answer.recommendation_id ?? undefined, position,
    } : {});
    await client.flush();
    location.hash = `#/item/${encodeURIComponent(item.item_id)}`;
  });
  return node;
}

async function row(title, fetchAnswer, name) {
  const section = document.createElement("section");
  section.dataset.row = name;
  section.innerHTML = "<h2></h2><div class=\"row\"></div>";
  section.querySelector("h2").innerHTML = title;
  page.append(section);
  const answer = await fetchAnswer();
  const shown = answer.items ?? [];
  const details = await items(shown.map((item) => item.item_id));
  const grid = section.querySelector(".row");
  shown.forEach((item, index) => {
    const found = details.get(item.item_id);
    if (found) grid.append(card(found, item, index + 1, answer));
  });
  if (!grid.children.length) grid.innerHTML = "<p class=\"empty\">Nothing here yet.</p>";
  if (answer.recommendation_id) client.impressions(answer);
  return details;
}

async function home() {
  const forYou = await row("For you <small>(placement demo-home)</small>",
    () => client.recommend({ placement: "demo-home", explain: true }), "for-you");
  const firstCategory = [...forYou.values()][0]?.categories?.[0];
  const favourite = favouriteCategory(firstCategory);
  if (favourite) {
    await row(`Trending in <span class="category">${favourite}</span>`,
      () => client.trending({ category: favourite, k: ROW, days: TREND_DAYS }), "trending");
  }
  await row("New arrivals <small>(placement demo-new)</small>",
    () => client.recommend({ placement: "demo-new", explain: true, exclude: [...forYou.keys()] }),
    "new-arrivals");
}

async function category(name) {
  await row(`Popular in <span class="category">${name}</span>`,
    () => client.popular({ category: name, k: 12, days: 3650 }), "category");
}

async function product(itemId) {
  const item = (await items([itemId])).get(itemId);
  if (!item) {
    page.innerHTML = "<p class=\"error\">No such item.</p>";
    return;
  }
  await client.track("view", itemId);
  const box = document.createElement("section");
  box.className = "product";
  box.innerHTML = `<h1></h1><p class="meta"></p><p class="text"></p><p class="price"></p>
    <button id="add">Add to cart</button> <button id="buy" class="secondary">Buy now</button>`;
  box.querySelector("h1").textContent = item.title || item.item_id;
  box.querySelector(".meta").textContent = (item.categories ?? []).join(", ");
  box.querySelector(".text").textContent = item.text ?? "";
  const price = item.attributes?.price;
  box.querySelector(".price").textContent = price != null ? `€${Number(price).toFixed(2)}` : "";
  box.querySelector("#add").addEventListener("click", async () => {
    store.set("cart", [...new Set([...store.get("cart", []), itemId])]);
    await client.track("add_to_cart", itemId);
    await client.flush();
    location.hash = "#/cart";
  });
  box.querySelector("#buy").addEventListener("click", async () => {
    await client.track("purchase", itemId, { value: price });
    await client.flush();
    location.hash = "#/";
  });
  page.append(box);
  await row("Similar", () => client.similar(itemId, { k: 6 }), "similar");
  await row("Bought together",
    () => client.similar(itemId, { k: 6, kind: "bought_together" }), "bought-together");
}

async function cart() {
  const ids = store.get("cart", []);
  const section = document.createElement("section");
  section.innerHTML = "<h2>Your cart</h2><div class=\"row\"></div><p><button id=\"checkout\">Buy "
    + "everything</button></p>";
  page.append(section);
  const details = await items(ids);
  for (const [, item] of details) section.querySelector(".row").append(card(item, {}, 0, null));
  if (!ids.length) section.querySelector(".row").innerHTML = "<p class=\"empty\">Empty.</p>";
  section.querySelector("#checkout").addEventListener("click", async () => {
    for (const [id, item] of details) {
      await client.track("purchase", id, { value: item.attributes?.price });
    }
    await client.flush();
    store.set("cart", []);
    location.hash = "#/";
  });
  if (ids.length) {
    await row("Goes well with your cart", async () => {
      const together = await client.similar(ids, { k: 6, kind: "bought_together" });
      return together.items?.length ? together : client.similar(ids, { k: 6 });
    }, "complements");
  }
}

async function categoriesNav() {
  const popular = await client.popular({ k: 100, days: 3650 });
  const details = await items(popular.items.map((item) => item.item_id));
  const names = [...new Set([...details.values()].flatMap((item) => item.categories ?? []))].sort();
  const nav = document.getElementById("categories");
  nav.replaceChildren(...names.map((name) => {
    const link = document.createElement("a");
    link.href = `#/category/${encodeURIComponent(name)}`;
    link.textContent = name;
    return link;
  }));
}

async function render() {
  document.body.dataset.state = "loading";
  page.replaceChildren();
  document.getElementById("cart-count").textContent = store.get("cart", []).length;
  const [, where, value] = location.hash.match(/^#\/(item|category|cart)?\/?(.*)$/) ?? [];
  try {
    if (where === "item") await product(decodeURIComponent(value));
    else if (where === "category") await category(decodeURIComponent(value));
    else if (where === "cart") await cart();
    else await home();
    document.body.dataset.state = "ready";
  } catch (error) {
    page.innerHTML = "<p class=\"error\"></p>";
    page.querySelector(".error").textContent = `The shop could not load: ${error.message}`;
    document.body.dataset.state = "error";
  }
}

document.getElementById("visitor").textContent = visitor;
document.getElementById("new-visitor").addEventListener("click", () => {
  newVisitor();
  location.hash = "#/";
  location.reload();
});
window.addEventListener("hashchange", render);
await connect();
await categoriesNav();
await render();
