// The one piece of JavaScript: copies the set-up key, without the spaces that group it for the
// eye, and says so in a live region for screen readers. The page works without it.
document.addEventListener("DOMContentLoaded", function () {
  var button = document.getElementById("copy-secret");
  var secret = document.getElementById("totp-secret");
  var status = document.getElementById("copy-status");
  if (!button || !secret || !status) { return; }
  button.hidden = false;
  button.addEventListener("click", function () {
    var text = secret.textContent.replace(/\s+/g, "");
    var done = function () { status.textContent = button.dataset.copied; };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).then(done, function () {});
    } else {
      var field = document.createElement("textarea");
      field.value = text;
      document.body.appendChild(field);
      field.select();
      document.execCommand("copy");
      document.body.removeChild(field);
      done();
    }
  });
});
