// Shared by the console, review and stats pages: building elements (text is
// always set with textContent), calling the API with the session's CSRF token,
// and signing in and out.
(function () {
  "use strict";
  var session = null;
  var options = null;

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function api(method, path, body) {
    var headers = {};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET" && session) headers["X-CSRF-Token"] = session.csrf;
    return fetch(path, {
      method: method, headers: headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
        if (r.status === 401 && path !== "/console/api/login") signedOut();
        if (!r.ok) {
          var error = new Error(data.message || ("请求失败（" + r.status + "）"));
          error.status = r.status;
          throw error;
        }
        return data;
      });
    });
  }

  function loginForm() {
    var section = document.getElementById("login");
    if (section.firstChild) return;
    var form = el("form", "login__form");
    form.id = "login-form";
    form.appendChild(el("h1", "", options.title));
    [["账号", "login-user", "text", "username"], ["密码", "login-password", "password", "current-password"]]
      .forEach(function (f) {
        var label = el("label", "", f[0] + " ");
        var input = el("input");
        input.id = f[1]; input.type = f[2]; input.autocomplete = f[3]; input.required = true;
        label.appendChild(input);
        form.appendChild(label);
      });
    var button = el("button", "", "登录"); button.type = "submit";
    form.appendChild(button);
    var error = el("p", "error"); error.id = "login-error"; error.setAttribute("role", "alert");
    form.appendChild(error);
    section.appendChild(form);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      error.textContent = "";
      api("POST", "/console/api/login", {
        username: document.getElementById("login-user").value.trim(),
        password: document.getElementById("login-password").value
      }).then(function (s) {
        document.getElementById("login-password").value = "";
        begin(s);
      }).catch(function (e) { error.textContent = e.message; });
    });
  }

  function signedOut(message) {
    session = null;
    if (options.onSignedOut) options.onSignedOut();
    document.getElementById("app").hidden = true;
    loginForm();
    document.getElementById("login").hidden = false;
    if (message) document.getElementById("login-error").textContent = message;
    document.getElementById("login-user").focus();
  }

  function begin(s) {
    if (options.roles.indexOf(s.role) < 0) return signedOut(options.refused);
    session = s;
    document.getElementById("login").hidden = true;
    document.getElementById("app").hidden = false;
    var who = document.getElementById("whoami");
    if (who) who.textContent = s.username + "（" + s.role + "）";
    options.onStart(s);
  }

  // options: {title, roles, refused, onStart(session), onSignedOut()}
  function start(pageOptions) {
    options = pageOptions;
    var logout = document.getElementById("logout");
    if (logout) {
      logout.addEventListener("click", function () {
        api("POST", "/console/api/logout", {}).catch(function () {}).then(function () { signedOut(); });
      });
    }
    api("GET", "/console/api/me").then(begin).catch(function () { signedOut(); });
  }

  window.Kefu = { el: el, api: api, start: start, session: function () { return session; } };
})();
