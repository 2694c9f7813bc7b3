// proxmoxer dashboard: the few things a page cannot do without a script.
// Every page works without it; this only keeps the clusters table fresh,
// filters it as you type, and copies fingerprints.
"use strict";

(function () {
  // -- the clusters table refreshes itself while it is visible --------------
  function startPolling(region) {
    var url = region.getAttribute("data-poll-url");
    var state = document.querySelector("[data-poll-state]");
    var timer = null;
    var stopped = false;
    var inFlight = null;

    function say(text) {
      if (!state) return;
      state.hidden = false;
      state.textContent = text;
    }

    function seconds() {
      return parseInt(region.getAttribute("data-poll-seconds"), 10) || 15;
    }

    function schedule() {
      clearTimeout(timer);
      if (!stopped && document.visibilityState === "visible") {
        timer = setTimeout(load, seconds() * 1000);
      }
    }

    function load() {
      if (inFlight) inFlight.abort();
      var controller = new AbortController();
      inFlight = controller;
      fetch(url + window.location.search, {
        credentials: "same-origin",
        headers: { Accept: "text/html" },
        signal: controller.signal,
      })
        .then(function (response) {
          if (response.status === 401 || response.status === 403) {
            stopped = true;
            say("You are signed out: reload the page to log in again.");
            return null;
          }
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.text();
        })
        .then(function (html) {
          if (html === null) return;
          replaceKeepingFocus(region, html);
          say("Updated " + new Date().toLocaleTimeString() + "; refreshes every " + seconds() + " s.");
        })
        .catch(function (error) {
          if (error.name !== "AbortError") say("Could not refresh (" + error.message + "); retrying.");
        })
        .finally(function () {
          if (inFlight === controller) inFlight = null;
          schedule();
        });
    }

    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "visible") {
        load(); // catch up at once, then on schedule
      } else {
        clearTimeout(timer); // nobody is looking: ask the server for nothing
      }
    });
    schedule();
    return load;
  }

  // Replacing the table must not throw a keyboard user back to the top.
  function replaceKeepingFocus(region, html) {
    var active = document.activeElement;
    var href = active && region.contains(active) ? active.getAttribute("href") : null;
    region.innerHTML = html;
    if (href) {
      var again = region.querySelector('a[href="' + CSS.escape(href) + '"]');
      if (again) again.focus();
    }
    enableCopyButtons(region);
  }

  // -- filters apply as they change, and the address follows them -----------
  function liveFilters(form, reload) {
    var typing = null;
    function apply() {
      var query = new URLSearchParams(new FormData(form));
      query.delete("offset");
      Array.from(query.keys()).forEach(function (key) {
        if (!query.get(key)) query.delete(key);
      });
      var search = query.toString();
      history.replaceState(null, "", window.location.pathname + (search ? "?" + search : ""));
      reload();
    }
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      apply();
    });
    form.addEventListener("change", apply);
    form.addEventListener("input", function () {
      clearTimeout(typing);
      typing = setTimeout(apply, 250);
    });
  }

  // -- copy buttons (hidden until this script can make them work) -----------
  function enableCopyButtons(root) {
    root.querySelectorAll("button[data-copy]").forEach(function (button) {
      if (button.dataset.ready) return;
      button.dataset.ready = "1";
      button.hidden = false;
      button.setAttribute("aria-live", "polite");
      var label = button.firstChild.nodeValue;
      button.addEventListener("click", function () {
        var source = document.getElementById(button.getAttribute("data-copy"));
        copy(source.textContent.trim()).then(
          function () { flash(button, label, "Copied"); },
          function () { selectText(source); flash(button, label, "Press Ctrl+C"); }
        );
      });
    });
  }

  function copy(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    return Promise.reject(new Error("no clipboard"));
  }

  function selectText(element) {
    var range = document.createRange();
    range.selectNodeContents(element);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  function flash(button, label, text) {
    button.firstChild.nodeValue = text;
    setTimeout(function () { button.firstChild.nodeValue = label; }, 2000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    enableCopyButtons(document);
    var region = document.querySelector("[data-poll-url]");
    if (region) {
      var reload = startPolling(region);
      var filters = document.querySelector("form[data-filters]");
      if (filters) liveFilters(filters, reload);
    }
  });
})();
