// The deposit page's card form and 3-D Secure confirmation, with Stripe.js (loaded before this file).
// Card details go from Stripe's own element straight to Stripe; this page only sends the token it gets back.
(function () {
  "use strict";

  var box = document.getElementById("card-payment");
  if (!box || typeof Stripe === "undefined") {
    return;
  }
  var stripe = Stripe(box.getAttribute("data-publishable-key"));
  var errors = document.getElementById("card-errors");
  // The sentences people read come from the page (translated there), with English as the fallback.
  function text(name, fallback) {
    return box.getAttribute(name) || fallback;
  }

  function showError(message) {
    if (errors) {
      errors.textContent = message || text("data-error-text", "The card could not be used.");
      errors.hidden = false;
    }
  }

  var secret = box.getAttribute("data-client-secret");
  if (secret) {
    var button = document.getElementById("authenticate-button");
    var status = document.getElementById("card-status");
    button.addEventListener("click", function () {
      button.disabled = true;
      stripe.confirmCardPayment(secret).then(function (result) {
        if (result.error) {
          showError(result.error.message);
          button.disabled = false;
          return;
        }
        if (status) {
          status.textContent = text("data-confirmed-text", "Thank you: your bank confirmed the payment.");
        }
        window.location.assign(box.getAttribute("data-return-url"));
      });
    });
    return;
  }

  var form = box.closest("form");
  var methodName = box.getAttribute("data-method-field");
  var token = document.getElementById(box.getAttribute("data-token-field"));
  var card = stripe.elements().create("card");
  card.mount("#card-element");

  form.addEventListener("submit", function (event) {
    var chosen = form.querySelector('input[name="' + methodName + '"]:checked');
    if (!chosen || chosen.value !== "new" || token.value) {
      return;
    }
    event.preventDefault();
    stripe.createToken(card).then(function (result) {
      if (result.error) {
        showError(result.error.message);
        form.querySelectorAll("button[type=submit]").forEach(function (b) {
          b.disabled = false;
        });
        return;
      }
      token.value = result.token.id;
      form.submit();
    });
  });
})();
