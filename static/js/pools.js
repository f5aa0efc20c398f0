// Progressive enhancement for the pool page; everything works without it.
(function () {
  "use strict";

  // <form data-confirm="question">: ask before sending (closing, cancelling, delivering, withdrawing).
  // A capturing listener on the document runs before the form's own listeners (app.js's
  // submit-once), so a "no" leaves the buttons usable.
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

  // The labels come from the table's data-label-<field> attributes, written by the page in the
  // reader's language ("Tier {number} minimum volume"), so no words live in this file.
  function renumber(row, index, table) {
    row.querySelector("th").textContent = String(index + 1);
    row.querySelectorAll(".field-error").forEach(function (node) { node.remove(); });
    row.querySelectorAll("td").forEach(function (cell) { cell.classList.remove("has-error"); });
    row.querySelectorAll("input").forEach(function (input) {
      var name = input.name.replace(/^tier-\d+-/, "tier-" + index + "-");
      input.name = name;
      input.id = name;
      input.value = "";
      input.removeAttribute("aria-invalid");
      input.removeAttribute("aria-describedby");
    });
    row.querySelectorAll("label").forEach(function (label) {
      label.htmlFor = label.htmlFor.replace(/^tier-\d+-/, "tier-" + index + "-");
      var text = table.getAttribute("data-label-" + label.htmlFor.replace(/^tier-\d+-/, ""));
      if (text) {
        label.textContent = text.replace("{number}", String(index + 1));
      }
    });
  }

  // "Add more rows" in the tier editor: add an empty row in place, keeping what was typed,
  // instead of reloading the page with ?rows=N.
  function setUpTierRows() {
    var link = document.querySelector("a.add-tier-rows");
    var table = document.getElementById("tier-editor");
    if (!link || !table) {
      return;
    }
    var max = parseInt(link.getAttribute("data-max-rows"), 10) || 20;
    link.addEventListener("click", function (event) {
      var body = table.tBodies[0];
      var rows = body.querySelectorAll("tr.tier-row");
      if (rows.length >= max) {
        return;
      }
      event.preventDefault();
      var row = rows[rows.length - 1].cloneNode(true);
      renumber(row, rows.length, table);
      body.appendChild(row);
      row.querySelector("input").focus();
      if (rows.length + 1 >= max) {
        link.hidden = true;
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    setUpConfirmations();
    setUpTierRows();
  });
})();
