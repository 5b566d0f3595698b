/* Northwind Outfitters demo shop: cart, page rendering and Cuewire calls.
 *
 * Each page says what it is with <body data-page="..."> (and data-product / data-category);
 * this file fills the page from window.NW_CATALOG. The Cuewire snippet (/cw.js) loads async;
 * the stub in front of its tag (README.md) queues calls made before it is there.
 */
"use strict";

(function () {
  const CATALOG = window.NW_CATALOG;
  const CART_KEY = "nw_cart";
  const ORDER_KEY = "nw_last_order";
  const PANEL_KEY = "nw_demo_panel";

  /* ---------- Cuewire: the README's stub in each page queues calls until it has loaded ---------- */

  function cuewireReady() {
    return Boolean(window.cuewire && typeof window.cuewire.version === "string");
  }

  function cw(method, ...args) {
    if (window.cuewire && typeof window.cuewire[method] === "function") window.cuewire[method](...args);
  }

  window.addEventListener("load", () => {
    let tries = 0;
    const timer = setInterval(() => {
      tries += 1;
      if (cuewireReady()) {
        clearInterval(timer);
        setSnippetStatus(true);
      } else if (tries >= 50) {
        clearInterval(timer); // 10 s: give up polling, calls stay queued in the stub
        setSnippetStatus(false);
      }
    }, 200);
  });

  /* ---------- helpers ---------- */

  const money = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });

  function esc(value) {
    return String(value).replace(/[&<>"']/g, (c) => (
      { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]
    ));
  }

  function slot(name) {
    return document.querySelector(`[data-slot="${name}"]`);
  }

  function stars(rating) {
    const full = Math.round(rating);
    return `<span class="stars" aria-hidden="true">${"★".repeat(full)}${"☆".repeat(5 - full)}</span>` +
      `<span class="visually-hidden">${rating} out of 5 stars</span>`;
  }

  function hashOf(text) {
    let h = 0;
    for (const ch of text) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
    return h;
  }

  /* ---------- product pictures: inline SVG, no network ---------- */

  const SHAPES = {
    shoes: (c, d) => `
      <ellipse cx="168" cy="184" rx="126" ry="9" fill="#000" opacity=".12"/>
      <path d="M48 160Q46 180 72 180H262Q290 178 288 158Q286 150 276 150H56Q48 150 48 160Z" fill="${d}"/>
      <rect x="50" y="143" width="236" height="11" rx="5" fill="#f5f1ea"/>
      <path d="M56 146C52 118 60 96 78 86L112 70C120 66 126 56 128 44L176 40C182 62 190 82 210 96C232 110 268 118 280 132C286 140 285 146 282 146Z" fill="${c}"/>
      <path d="M56 146C52 118 60 96 78 86L88 146Z" fill="#000" opacity=".18"/>
      <path d="M232 108C258 116 276 126 282 140V146H238C234 132 232 120 232 108Z" fill="${d}" opacity=".55"/>
      <path d="M96 128C140 118 180 106 222 116" stroke="${d}" stroke-width="9" stroke-linecap="round" fill="none"/>
      <g stroke="#fff" stroke-width="4" stroke-linecap="round" opacity=".9">
        <path d="M140 64l12 -6M152 74l12 -6M164 84l12 -6M176 94l12 -6"/></g>
      <path d="M128 44L176 40" stroke="${d}" stroke-width="6" stroke-linecap="round"/>`,
    jackets: (c, d) => `
      <ellipse cx="160" cy="214" rx="84" ry="7" fill="#000" opacity=".1"/>
      <path d="M132 40H188L230 58L262 150L240 158L222 114V206H98V114L80 158L58 150L90 58Z" fill="${c}"/>
      <path d="M98 114V206H112V104Z M222 114V206H208V104Z" fill="#000" opacity=".12"/>
      <path d="M132 40L160 66L188 40L180 30H140Z" fill="${d}"/>
      <path d="M160 66V206" stroke="${d}" stroke-width="4"/>
      <path d="M114 150L136 168M206 150L184 168" stroke="#000" stroke-width="4" stroke-linecap="round" opacity=".25"/>
      <path d="M58 150L80 158L76 170L54 162Z M262 150L240 158L244 170L266 162Z" fill="${d}"/>
      <rect x="98" y="198" width="124" height="10" rx="3" fill="${d}"/>`,
    packs: (c, d) => `
      <ellipse cx="160" cy="214" rx="72" ry="7" fill="#000" opacity=".12"/>
      <path d="M136 50C136 28 184 28 184 50" stroke="${d}" stroke-width="8" fill="none"/>
      <rect x="98" y="46" width="124" height="164" rx="38" fill="${c}"/>
      <path d="M98 94C98 62 118 46 160 46S222 62 222 94Z" fill="#000" opacity=".2"/>
      <rect x="118" y="128" width="84" height="66" rx="18" fill="#fff" opacity=".2"/>
      <path d="M126 140H194" stroke="${d}" stroke-width="4" stroke-linecap="round"/>
      <path d="M108 112V194M212 112V194" stroke="${d}" stroke-width="6" stroke-linecap="round"/>
      <circle cx="160" cy="110" r="7" fill="${d}"/>`,
  };

  /* `label`: the picture's text alternative; without one it is decorative (the name is next to it). */
  function art(id, { label = null } = {}) {
    const p = CATALOG.products[id];
    const [main, accent] = p.colors;
    const a11y = label ? `role="img" aria-label="${esc(label)}"` : `aria-hidden="true" focusable="false"`;
    return `<svg class="art" viewBox="0 0 320 240" ${a11y}>
      <rect width="320" height="240" fill="#f3efe7"/>
      <rect width="320" height="240" fill="${main}" opacity=".12"/>
      <circle cx="250" cy="62" r="84" fill="${accent}" opacity=".12"/>
      ${SHAPES[p.category](main, accent)}
    </svg>`;
  }

  /* ---------- cart (localStorage) ---------- */

  function readCart() {
    try {
      const lines = JSON.parse(localStorage.getItem(CART_KEY) || "[]");
      return Array.isArray(lines) ? lines.filter((l) => CATALOG.products[l.id] && l.qty > 0) : [];
    } catch {
      return [];
    }
  }

  function writeCart(lines) {
    localStorage.setItem(CART_KEY, JSON.stringify(lines));
    updateCartCount();
  }

  function cartTotals(lines) {
    const items = lines.reduce((n, l) => n + l.qty, 0);
    const subtotal = lines.reduce((sum, l) => sum + l.qty * CATALOG.products[l.id].price, 0);
    const shipping = subtotal === 0 || subtotal >= 100 ? 0 : 8;
    return { items, subtotal, shipping, total: subtotal + shipping };
  }

  function addToCart(id, size) {
    const lines = readCart();
    const line = lines.find((l) => l.id === id && l.size === size);
    if (line) line.qty += 1;
    else lines.push({ id, size, qty: 1 });
    writeCart(lines);
  }

  function updateCartCount() {
    const { items } = cartTotals(readCart());
    for (const el of document.querySelectorAll("[data-cart-count]")) {
      el.textContent = String(items);
      el.hidden = items === 0;
    }
    for (const el of document.querySelectorAll("[data-cart-label]")) {
      el.setAttribute("aria-label", `Cart, ${items} ${items === 1 ? "item" : "items"}`);
    }
  }

  /* ---------- shared pieces ---------- */

  function card(id) {
    const p = CATALOG.products[id];
    return `<article class="card">
      <a class="card-link" href="/product/${id}.html">
        <div class="card-media">${art(id)}</div>
        <div class="card-body">
          <p class="eyebrow">${esc(CATALOG.categories[p.category].name)}</p>
          <h3 class="card-title">${esc(p.name)}</h3>
          <p class="card-text">${esc(p.tagline)}</p>
          <p class="card-price">${money.format(p.price)}</p>
        </div>
      </a>
    </article>`;
  }

  function idsInCategory(category) {
    return Object.keys(CATALOG.products).filter((id) => CATALOG.products[id].category === category);
  }

  function fillArt() {
    for (const el of document.querySelectorAll("[data-art]")) {
      if (CATALOG.products[el.dataset.art]) el.innerHTML = art(el.dataset.art);
    }
  }

  /* ---------- pages ---------- */

  function renderHome() {
    const featured = Object.keys(CATALOG.products).filter((id) => CATALOG.products[id].featured);
    slot("featured").innerHTML = featured.map(card).join("");
  }

  function renderCategory() {
    slot("products").innerHTML = idsInCategory(document.body.dataset.category).map(card).join("");
  }

  function renderProduct() {
    const id = document.body.dataset.product;
    const p = CATALOG.products[id];
    const category = CATALOG.categories[p.category];

    slot("crumb-category").innerHTML =
      `<a href="/category/${p.category}.html">${esc(category.name)}</a>`;
    slot("image").innerHTML = art(id, { label: `${p.name}: illustration of the product` });
    slot("category").textContent = category.name;
    slot("rating").innerHTML = `${stars(p.rating)} <a href="#reviews">${p.rating} · ${p.reviews} reviews</a>`;
    slot("price").textContent = money.format(p.price);
    slot("tagline").textContent = p.tagline;
    slot("description").textContent = p.description;
    slot("features").innerHTML = p.features.map((f) => `<li>${esc(f)}</li>`).join("");
    slot("specs").innerHTML = Object.entries(p.specs)
      .map(([k, v]) => `<div><dt>${esc(k)}</dt><dd>${esc(v)}</dd></div>`).join("");

    const sizeField = slot("size-field");
    if (category.sizes) {
      const select = sizeField.querySelector("select");
      select.innerHTML = category.sizes.map((s) => `<option>${esc(s)}</option>`).join("");
      select.selectedIndex = Math.floor(category.sizes.length / 2);
    } else {
      sizeField.hidden = true;
    }

    const pool = CATALOG.reviews[p.category];
    const start = hashOf(id) % pool.length;
    const picked = Array.from({ length: 6 }, (_, i) => pool[(start + i) % pool.length]);
    slot("reviews-summary").innerHTML =
      `${stars(p.rating)} <strong>${p.rating}</strong> average from ${p.reviews} reviews. Showing the 6 most helpful.`;
    slot("reviews").innerHTML = picked.map((r) => `<li class="review">
        <p class="review-head">${stars(r.rating)} <strong>${esc(r.title)}</strong></p>
        <p>${esc(r.body.replaceAll("{name}", p.name))}</p>
        <p class="review-author">${esc(r.author)} · Verified buyer</p>
      </li>`).join("");

    slot("related").innerHTML = idsInCategory(p.category).filter((other) => other !== id)
      .map(card).join("");

    const button = slot("add");
    const status = slot("added");
    button.addEventListener("click", () => {
      const size = category.sizes ? sizeField.querySelector("select").value : null;
      addToCart(id, size);
      status.innerHTML = `Added ${esc(p.name)}${size ? ` (${esc(size)})` : ""} to your cart. ` +
        `<a href="/cart.html">View cart</a>`;
      cw("track", "add_to_cart", { product_id: id, name: p.name, category: p.category, price: p.price });
    });

    cw("track", "product_view", { product_id: id, name: p.name, category: p.category, price: p.price });
  }

  function summaryHtml(lines) {
    const t = cartTotals(lines);
    return `<dl class="totals">
      <div><dt>Subtotal (${t.items} ${t.items === 1 ? "item" : "items"})</dt><dd>${money.format(t.subtotal)}</dd></div>
      <div><dt>Shipping</dt><dd>${t.shipping ? money.format(t.shipping) : "Free"}</dd></div>
      <div class="total"><dt>Total</dt><dd>${money.format(t.total)}</dd></div>
    </dl>`;
  }

  function renderCart() {
    const list = slot("cart-lines");
    const lines = readCart();
    const empty = lines.length === 0;
    slot("cart-empty").hidden = !empty;
    slot("cart-full").hidden = empty;
    if (empty) return;

    list.innerHTML = lines.map((l, i) => {
      const p = CATALOG.products[l.id];
      return `<li class="cart-line">
        <a class="cart-thumb" href="/product/${l.id}.html" tabindex="-1" aria-hidden="true">${art(l.id)}</a>
        <div class="cart-info">
          <h2 class="cart-name"><a href="/product/${l.id}.html">${esc(p.name)}</a></h2>
          <p class="muted">${l.size ? `Size ${esc(l.size)} · ` : ""}${money.format(p.price)} each</p>
          <button class="link-button" type="button" data-act="remove" data-line="${i}">Remove<span class="visually-hidden"> ${esc(p.name)}</span></button>
        </div>
        <div class="qty" role="group" aria-label="Quantity of ${esc(p.name)}">
          <button type="button" data-act="dec" data-line="${i}" aria-label="One fewer">−</button>
          <output aria-live="polite">${l.qty}</output>
          <button type="button" data-act="inc" data-line="${i}" aria-label="One more">+</button>
        </div>
        <p class="cart-line-total">${money.format(l.qty * p.price)}</p>
      </li>`;
    }).join("");
    slot("cart-summary").innerHTML = summaryHtml(lines);
  }

  function wireCart() {
    renderCart();
    slot("cart-lines").addEventListener("click", (event) => {
      const button = event.target.closest("button[data-act]");
      if (!button) return;
      const lines = readCart();
      const line = lines[Number(button.dataset.line)];
      if (!line) return;
      const act = button.dataset.act;
      if (act === "inc") line.qty += 1;
      if (act === "dec") line.qty -= 1;
      if (act === "remove") line.qty = 0;
      writeCart(lines.filter((l) => l.qty > 0));
      renderCart();
      slot("cart-status").textContent = act === "remove" ? "Item removed." : "Quantity updated.";
      const again = document.querySelector(`[data-act="${act}"][data-line="${button.dataset.line}"]`);
      (again || document.querySelector("h1")).focus();
    });
  }

  function renderCheckout() {
    const lines = readCart();
    const form = document.querySelector("form[name=checkout]");
    if (lines.length === 0) {
      slot("checkout-empty").hidden = false;
      form.hidden = true;
      return;
    }
    slot("checkout-summary").innerHTML = `<ul class="mini-lines">${lines.map((l) => {
      const p = CATALOG.products[l.id];
      return `<li><span>${l.qty} × ${esc(p.name)}${l.size ? ` <span class="muted">(${esc(l.size)})</span>` : ""}</span>` +
        `<span>${money.format(l.qty * p.price)}</span></li>`;
    }).join("")}</ul>${summaryHtml(lines)}`;

    const { items, total } = cartTotals(lines);
    cw("track", "checkout_started", { items, total });

    // The email typed at checkout identifies the shopper (unsigned: the demo has no backend
    // to sign it), so the demo rule checkout-left-email can send a reminder (/qa/mail).
    const emailField = form.querySelector("input[name=email]");
    emailField.addEventListener("change", () => {
      const email = emailField.value.trim();
      if (emailField.checkValidity() && email) cw("identify", email.split("@")[0], { email });
    });

    // method="dialog" on the form: even without JavaScript nothing is ever sent anywhere.
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const data = new FormData(form);
      const email = String(data.get("email") || "");
      const order = {
        order_id: `NW-${Math.random().toString(36).slice(2, 8).toUpperCase()}`,
        total,
        user_id: email.split("@")[0],
        name: String(data.get("name") || "").trim().split(/\s+/)[0],
        tracked: false,
      };
      sessionStorage.setItem(ORDER_KEY, JSON.stringify(order));
      writeCart([]);
      location.assign("/thanks.html");
    });
  }

  function renderThanks() {
    let order = null;
    try {
      order = JSON.parse(sessionStorage.getItem(ORDER_KEY) || "null");
    } catch {
      order = null;
    }
    if (!order) return;
    slot("thanks-title").textContent = order.name ? `Thank you, ${order.name}!` : "Thank you!";
    slot("thanks-order").innerHTML =
      `Your order <strong>${esc(order.order_id)}</strong> (${money.format(order.total)}) is on its way. ` +
      "Well, it would be, if this were a real shop.";
    if (!order.tracked) {
      // On this page rather than on submit, so that leaving checkout cannot drop the events.
      if (order.user_id) cw("identify", order.user_id, order.name ? { name: order.name } : {});
      cw("track", "purchase", { order_id: order.order_id, total: order.total });
      sessionStorage.setItem(ORDER_KEY, JSON.stringify({ ...order, tracked: true }));
    }
  }

  /* A tiny single-page app: two views switched with history.pushState. */
  function wireSpa() {
    const views = Array.from(document.querySelectorAll("[data-view]"));
    const links = Array.from(document.querySelectorAll("[data-view-link]"));
    const names = views.map((v) => v.dataset.view);

    function show(name, focus) {
      const current = names.includes(name) ? name : names[0];
      for (const view of views) view.hidden = view.dataset.view !== current;
      for (const link of links) {
        if (link.dataset.viewLink === current) link.setAttribute("aria-current", "page");
        else link.removeAttribute("aria-current");
      }
      const view = views.find((v) => v.dataset.view === current);
      document.title = `${view.dataset.title} · Trip planner · Northwind Outfitters`;
      if (focus) view.querySelector("h2").focus();
    }

    for (const link of links) {
      link.addEventListener("click", (event) => {
        event.preventDefault();
        const name = link.dataset.viewLink;
        if (new URLSearchParams(location.search).get("view") === name) return;
        history.pushState({ view: name }, "", `/spa.html?view=${name}`);
        show(name, true);
      });
    }
    window.addEventListener("popstate", () => {
      show(new URLSearchParams(location.search).get("view"), true);
    });
    show(new URLSearchParams(location.search).get("view"), false);
  }

  /* ---------- demo controls ---------- */

  function resetVisitor() {
    for (const store of [localStorage, sessionStorage]) {
      for (const key of Object.keys(store)) {
        if (key.startsWith("cw_")) store.removeItem(key);
      }
    }
    for (const cookie of document.cookie.split(";")) {
      const name = cookie.split("=")[0].trim();
      if (name.startsWith("cw_")) document.cookie = `${name}=; Max-Age=0; path=/`;
    }
    localStorage.removeItem(CART_KEY);
    sessionStorage.removeItem(ORDER_KEY);
    location.reload();
  }

  function setSnippetStatus(loaded) {
    const el = document.querySelector("[data-snippet-status]");
    if (!el) return;
    el.textContent = loaded ? "Cuewire snippet loaded." : "Cuewire snippet not loaded: is `cuewire demo` running?";
    el.className = loaded ? "status-ok" : "status-off";
  }

  /* A new session for the same visitor: as if they came back later (returning visitor). */
  function newSession() {
    localStorage.removeItem("cw_sid");
    location.reload();
  }

  const DEMO_ACTIONS = { "new-session": newSession, "reset-visitor": resetVisitor };

  function mountDemoPanel() {
    const panel = document.createElement("aside");
    panel.className = "demo-panel";
    panel.setAttribute("aria-label", "Demo controls");
    panel.innerHTML = `<details>
      <summary>Demo controls</summary>
      <div class="demo-body">
        <p class="demo-links"><a href="/qa" target="cuewire-qa">QA console</a> <a href="/qa/metrics" target="cuewire-qa">Metrics</a> <a href="/studio">Studio</a></p>
        <p class="demo-buttons">
          <button type="button" class="btn btn-small" data-demo="new-session">New session</button>
          <button type="button" class="btn btn-small" data-demo="reset-visitor">Reset visitor</button>
        </p>
        <p class="demo-hint">New session: the same visitor comes back. Reset visitor: forget the
          visitor and empty the cart.</p>
        <details class="demo-try">
          <summary>What to try</summary>
          <ul class="demo-recipes">
            <li>Stay 8 s on a product page (chat); close it and stay until 15 s (size help).</li>
            <li>Leave a product page through the top of the window (offer, A/B tested).</li>
            <li>View 3 products of one category within 60 s (category offer).</li>
            <li>View 3 products of different categories, stay 20 s on the third.</li>
            <li>Add to cart and stay still 15 s (5% off), or keep browsing 45 s (reminder).</li>
            <li>At checkout, type an email and leave without ordering: 20 s later the reminder
              is in the <a href="/qa/mail" target="cuewire-qa">demo mailbox</a>.</li>
            <li>Scroll down the <a href="/blog/choosing-trail-shoes.html">Journal article</a>.</li>
            <li>New visitor: stay still 10 s (welcome). Anyone: 40 s (still there?).</li>
            <li>New session with items in the cart (reminder), or after 10 s without clicking
              (welcome back).</li>
          </ul>
          <p class="demo-hint">At most 3 prompts per session. The full table: docs/qa.md.</p>
        </details>
        <p data-snippet-status class="status-off">Waiting for the Cuewire snippet…</p>
      </div>
    </details>`;
    const details = panel.querySelector("details");  // the outer one
    const saved = localStorage.getItem(PANEL_KEY);
    // Open by default on desktop screens (a strip above the header, or beside the shop from
    // 1880px: shop.css); on phones a one-line strip until opened.
    details.open = saved ? saved === "open" : window.matchMedia("(min-width: 900px)").matches;
    details.addEventListener("toggle", () => {
      localStorage.setItem(PANEL_KEY, details.open ? "open" : "closed");
    });
    // First in the page after the skip link, so it takes its place in the flow.
    const skip = document.querySelector(".skip-link");
    if (skip) skip.after(panel);
    else document.body.prepend(panel);
  }

  // The demo controls are not part of the shop: their clicks never reach the Cuewire snippet
  // (it listens on the document; this listener runs first, on the window, and stops them), so
  // pressing "New session" does not count as the visitor's last activity.
  window.addEventListener("click", (event) => {
    const target = event.target instanceof Element ? event.target : null;
    if (!target || !target.closest(".demo-panel")) return;
    event.stopPropagation();
    const control = target.closest("[data-demo]");
    if (control && DEMO_ACTIONS[control.dataset.demo]) DEMO_ACTIONS[control.dataset.demo]();
  }, true);

  /* ---------- start ---------- */

  const PAGES = {
    home: renderHome,
    category: renderCategory,
    product: renderProduct,
    cart: wireCart,
    checkout: renderCheckout,
    thanks: renderThanks,
    spa: wireSpa,
  };

  function start() {
    const page = PAGES[document.body.dataset.page];
    if (page) page();
    fillArt();
    updateCartCount();
    mountDemoPanel();
    window.addEventListener("storage", (event) => {
      if (event.key === CART_KEY) updateCartCount();
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
