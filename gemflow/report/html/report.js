// gemflow's report: thumbnails shown twice, before/after sliders, the full-size view, and a
// self-test (run with #selftest in the URL). No user text is ever parsed as HTML here: text goes
// through textContent and URLs through attributes.
(function () {
  "use strict";

  // A thumbnail that appears more than once (an edit's "before" is its input's picture) is
  // embedded once, in the first <img> showing it; the others copy its source.
  const embedded = new Map();
  document.querySelectorAll("img[data-digest][src]").forEach(function (img) {
    embedded.set(img.dataset.digest, img.getAttribute("src"));
  });
  document.querySelectorAll("img[data-same]").forEach(function (img) {
    const src = embedded.get(img.dataset.same);
    if (src) img.src = src;
  });

  // Before/after: the range clips the "after" picture, which lies over the "before".
  function clip(range) {
    const after = range.closest(".ba").querySelector(".ba-after");
    after.style.clipPath = "inset(0 " + (100 - Number(range.value)) + "% 0 0)";
  }
  document.querySelectorAll(".ba-range").forEach(function (range) {
    range.addEventListener("input", function () { clip(range); });
    clip(range);
  });

  // The full-size view: the linked file, fitted to the window.
  const box = document.getElementById("lightbox");
  const big = document.getElementById("lightbox-img");
  const caption = document.getElementById("lightbox-caption");
  const missing = document.getElementById("lightbox-missing");
  let returnTo = null;

  function open(link) {
    returnTo = link;
    missing.hidden = true;
    big.hidden = false;
    big.removeAttribute("src");
    big.alt = link.dataset.caption || "";
    caption.textContent = link.dataset.caption || "";
    big.src = link.getAttribute("href");
    box.hidden = false;
    box.focus();
  }
  function close() {
    box.hidden = true;
    big.removeAttribute("src");
    if (returnTo) returnTo.focus();
  }
  big.addEventListener("error", function () {
    if (!big.getAttribute("src")) return;
    big.hidden = true;
    missing.textContent = "The full-size file is not there (" +
      decodeURIComponent(big.getAttribute("src")) + "): gemflow run restores it.";
    missing.hidden = false;
  });
  document.addEventListener("click", function (event) {
    const link = event.target.closest("a.full");
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    open(link);
  });
  box.addEventListener("click", close);
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && !box.hidden) close();
  });

  if (location.hash === "#selftest") {
    // The full-size view opens now, so its picture loads before the page's "load" event; then
    // everything is checked at once, and the findings are in the page before a headless browser
    // dumps it (no timers to race).
    const first = document.querySelector("main a.full");
    if (first) open(first);
    window.addEventListener("load", function () {
      let found;
      try {
        found = selftest(first);
      } catch (error) {
        found = { error: String((error && error.stack) || error) };
      }
      const out = document.getElementById("selftest-result");
      out.textContent = JSON.stringify(found);
      out.hidden = false;
    });
  }

  // What a person would check by hand, as JSON: every picture decoded, the slider moves its clip,
  // a lineage node scrolls its card into view, the full-size view fits the window.
  function selftest(first) {
    const found = {};
    if (first) {
      const rect = big.getBoundingClientRect();
      found.lightbox = {
        open: !box.hidden, href: first.getAttribute("href"), naturalWidth: big.naturalWidth,
        width: rect.width, height: rect.height,
        fits: rect.width <= window.innerWidth + 0.5 && rect.height <= window.innerHeight + 0.5,
        message: missing.hidden ? null : missing.textContent,
      };
      close();
    }

    const pictures = Array.from(document.querySelectorAll("main img"));
    found.images = pictures.length;
    found.broken = pictures.filter(function (img) { return !(img.complete && img.naturalWidth > 0); })
      .map(function (img) { return img.alt || img.dataset.same || "?"; });

    const range = document.querySelector(".ba-range");
    if (range) {
      const after = range.closest(".ba").querySelector(".ba-after");
      const at50 = getComputedStyle(after).clipPath;
      range.value = "20";
      range.dispatchEvent(new Event("input", { bubbles: true }));
      const at20 = getComputedStyle(after).clipPath;
      found.slider = { before: at50, after: at20, works: at50 !== at20 };
    }

    const nodes = Array.from(document.querySelectorAll("#lineage a.node"));
    if (nodes.length) {
      const node = nodes[nodes.length - 1];  // the deepest step: its card is furthest down
      const target = node.getAttribute("href");
      window.scrollTo(0, 0);
      node.dispatchEvent(new MouseEvent("click", { bubbles: true, cancelable: true, view: window }));
      const card = document.getElementById(target.slice(1));
      const top = card ? card.getBoundingClientRect().top : null;
      found.lineage = {
        nodes: nodes.length, target: target, hash: location.hash, top: top,
        scrolled: window.scrollY, inView: top !== null && top >= -2 && top < window.innerHeight,
      };
    }
    return found;
  }
})();
