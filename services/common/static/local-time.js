// Shows each <time datetime="...Z"> (a lock's end, a sign-in, a set-up, which the server writes
// in UTC) in the browser's own time zone, in the page's language (with the browser's regional
// habits when it speaks that language: en-GB's 24-hour clock); one marked data-with-date shows its
// day too. Without it the page still says the time, in UTC.
document.addEventListener("DOMContentLoaded", function () {
  if (!window.Intl || !Intl.DateTimeFormat) { return; }
  var language = document.documentElement.lang;
  var browser = navigator.language || "";
  var locale = browser.split("-")[0] === language ? browser : language;
  var time = { hour: "2-digit", minute: "2-digit", timeZoneName: "short" };
  var format = new Intl.DateTimeFormat(locale || undefined, time);
  var withDate = new Intl.DateTimeFormat(locale || undefined, {
    day: "numeric", month: "long", year: "numeric", hour: "2-digit", minute: "2-digit", timeZoneName: "short"
  });
  var moments = document.querySelectorAll("time[datetime]");
  for (var i = 0; i < moments.length; i++) {
    var moment = new Date(moments[i].getAttribute("datetime"));
    if (isNaN(moment.getTime())) { continue; }
    var chosen = moments[i].hasAttribute("data-with-date") ? withDate : format;
    moments[i].textContent = chosen.format(moment);
  }
});
