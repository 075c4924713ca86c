// The one piece of JavaScript: copies the TOTP secret. The page works without it.
document.addEventListener("DOMContentLoaded", function () {
  var button = document.getElementById("copy-secret");
  var secret = document.getElementById("totp-secret");
  if (!button || !secret) { return; }
  button.hidden = false;
  button.addEventListener("click", function () {
    var text = secret.textContent.trim();
    var done = function () { button.textContent = button.dataset.copied; };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).then(done, function () {});
    } else {
      var range = document.createRange();
      range.selectNodeContents(secret);
      var selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      document.execCommand("copy");
      done();
    }
  });
});
