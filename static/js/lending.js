// Progressive enhancement for the lending pages; everything works without it.
(function () {
  "use strict";

  var DEBOUNCE_MS = 300;
  var PREVIEW_FIELDS = ["amount", "currency", "term_months", "max_rate", "monthly_income", "monthly_debt"];

  // <form data-confirm="question">: ask before sending (cancel a request or an offer, pay off a loan).
  // Capturing, so it runs before app.js's submit-once and a "no" leaves the buttons usable.
  function setUpConfirmations() {
    document.addEventListener("submit", function (event) {
      var form = event.target;
      if (!form.matches || !form.matches("form[data-confirm]")) {
        return;
      }
      if (!window.confirm(form.getAttribute("data-confirm"))) {
        event.preventDefault();
        event.stopPropagation();
      }
    }, true);
  }

  // The borrow page's live preview: the server computes it (GET /borrow/preview, JSON);
  // this only asks, debounced, and puts the answer in place. The summary sentence is an
  // aria-live region, so screen readers hear the new monthly payment and grade.
  // Every sentence shown comes from the server in the reader's language: the preview's
  // summary and HTML, and the form's data-preview-error ("…%(message)s…"),
  // data-preview-invalid and data-preview-unavailable attributes.
  function setUpBorrowPreview() {
    var form = document.getElementById("borrow-form");
    var status = document.getElementById("preview-status");
    var body = document.getElementById("preview-body");
    if (!form || !status || !body || !window.fetch) {
      return;
    }
    var url = form.getAttribute("data-preview-url");
    var errorText = form.getAttribute("data-preview-error") || "%(message)s";
    var invalidText = form.getAttribute("data-preview-invalid") || "";
    var unavailableText = form.getAttribute("data-preview-unavailable") || "";
    var timer = null;
    var latest = 0;

    function query() {
      var params = new URLSearchParams();
      PREVIEW_FIELDS.forEach(function (name) {
        var field = form.elements.namedItem(name);
        if (field && field.value.trim() !== "") {
          params.append(name, field.value.trim());
        }
      });
      return params;
    }

    function ready(params) {
      return params.has("amount") && params.has("term_months") && params.has("max_rate");
    }

    function show(text, kind) {
      status.textContent = text;
      status.classList.toggle("is-error", kind === "error");
      status.classList.remove("is-loading");
    }

    function refresh() {
      var params = query();
      if (!ready(params)) {
        return;
      }
      var ticket = ++latest;
      status.classList.add("is-loading");
      window.fetch(url + "?" + params.toString(), {
        credentials: "same-origin",
        headers: { "Accept": "application/json" }
      }).then(function (response) {
        return response.json().then(function (data) {
          return { ok: response.ok, data: data };
        });
      }).then(function (result) {
        if (ticket !== latest) {
          return; // an answer to an older question
        }
        if (result.ok) {
          body.innerHTML = result.data.html; // rendered and escaped by the server's template
          show(result.data.summary, "ok");
        } else {
          var message = result.data.message;
          // a function, so "$&" or "$1" in the message is not a replacement pattern
          show(message ? errorText.replace("%(message)s", function () { return message; }) : invalidText, "error");
        }
      }).catch(function () {
        if (ticket === latest) {
          show(unavailableText, "error");
        }
      });
    }

    function schedule() {
      window.clearTimeout(timer);
      timer = window.setTimeout(refresh, DEBOUNCE_MS);
    }

    form.addEventListener("input", schedule);
    form.addEventListener("change", schedule);
  }

  document.addEventListener("DOMContentLoaded", function () {
    setUpConfirmations();
    setUpBorrowPreview();
  });
})();
