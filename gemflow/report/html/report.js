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
    window.addEventListener("load", function () {
      selftest().catch(function (error) { report({ error: String(error && error.stack || error) }); });
    });
  }

  function report(found) {
    const out = document.getElementById("selftest-result");
    out.textContent = JSON.stringify(found);
    out.hidden = false;
  }

  // Checks what a person would check by hand, and writes the findings as JSON into the page:
  // a headless browser's --dump-dom hands them to the test.
  async function selftest() {
    const found = {};
    const pictures = Array.from(document.querySelectorAll("main img"));
    await Promise.all(pictures.map(loaded));  // by "load" they are, unless one is broken
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
      await frame();
      const card = document.getElementById(target.slice(1));
      const top = card ? card.getBoundingClientRect().top : null;
      found.lineage = {
        nodes: nodes.length, target: target, hash: location.hash, top: top,
        scrolled: window.scrollY, inView: top !== null && top >= -2 && top < window.innerHeight,
      };
    }

    const link = document.querySelector("main a.full");
    if (link) {
      link.click();
      await loaded(big);
      const rect = big.getBoundingClientRect();
      found.lightbox = {
        open: !box.hidden, href: link.getAttribute("href"), naturalWidth: big.naturalWidth,
        width: rect.width, height: rect.height,
        fits: rect.width <= window.innerWidth + 0.5 && rect.height <= window.innerHeight + 0.5,
        message: missing.hidden ? null : missing.textContent,
      };
      close();
    }
    report(found);
  }

  function frame() {
    return new Promise(function (done) { requestAnimationFrame(function () { setTimeout(done, 0); }); });
  }
  function loaded(img) {
    return new Promise(function (done) {
      if (img.complete && img.naturalWidth) return done();
      img.addEventListener("load", done, { once: true });
      img.addEventListener("error", done, { once: true });
      setTimeout(done, 3000);
    });
  }
})();
