// Progressive enhancement only: every page works without this file.
(function () {
  "use strict";

  // <button data-copy-target="id"> copies the text of #id to the clipboard. The
  // sentence announced afterwards comes from the page (data-copied-text, translated
  // on the server), since this file cannot translate.
  function setUpCopyButtons() {
    document.querySelectorAll("[data-copy-target]").forEach(function (button) {
      var target = document.getElementById(button.getAttribute("data-copy-target"));
      if (!target || !navigator.clipboard) {
        return;
      }
      button.hidden = false;
      button.addEventListener("click", function () {
        var text = target.value !== undefined ? target.value : target.textContent;
        navigator.clipboard.writeText(text.trim()).then(function () {
          var status = document.getElementById(button.getAttribute("data-copy-status"));
          if (status) {
            status.textContent = button.getAttribute("data-copied-text") || "Copied to the clipboard.";
          }
        });
      });
    });
  }

  // A table wider than the screen scrolls sideways inside its .table-wrap: make
  // that box reachable by keyboard and name it after the table's caption, so a
  // keyboard or screen-reader user can scroll it too (WCAG 2.1.1).
  function setUpScrollableTables() {
    var boxes = document.querySelectorAll(".table-wrap");
    function update() {
      boxes.forEach(function (box) {
        var scrolls = box.scrollWidth > box.clientWidth + 1;
        if (scrolls && !box.hasAttribute("tabindex")) {
          var caption = box.querySelector("caption");
          box.setAttribute("tabindex", "0");
          box.setAttribute("role", "region");
          box.setAttribute("aria-label", caption ? caption.textContent.trim() : (document.title || "Table"));
          box.setAttribute("data-made-scrollable", "");
        } else if (!scrolls && box.hasAttribute("data-made-scrollable")) {
          box.removeAttribute("tabindex");
          box.removeAttribute("role");
          box.removeAttribute("aria-label");
          box.removeAttribute("data-made-scrollable");
        }
      });
    }
    update();
    window.addEventListener("resize", update);
  }

  // <form data-submit-once>: a double click does not send the form twice.
  function setUpSubmitOnce() {
    document.querySelectorAll("form[data-submit-once]").forEach(function (form) {
      form.addEventListener("submit", function () {
        form.querySelectorAll("button[type=submit], input[type=submit]").forEach(function (button) {
          window.setTimeout(function () {
            button.disabled = true;
            button.setAttribute("aria-disabled", "true");
          }, 0);
        });
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    setUpCopyButtons();
    setUpSubmitOnce();
    setUpScrollableTables();
  });
})();
