// Sign in: locally a user name (and "operator" for the admins group) minted by the stack; on AWS the
// issuer's hosted page (Cognito: authorization code with PKCE).

import * as auth from "../auth.js";
import { field, h, put, setFieldError } from "../dom.js";
import { t } from "../i18n.js";
import { banner } from "../ui.js";

export function render(main, params, { signedIn }) {
  const panel = h("section", { class: "panel signin", "aria-labelledby": "signin-title" });
  put(main, panel);
  put(panel, h("h1", { id: "signin-title" }, t("signin.title")), h("p", { class: "muted" }, t("signin.intro")));

  if (auth.authMode() === "local") {
    const user = h("input", { type: "text", name: "user", autocomplete: "username", required: true, maxlength: 128,
      value: sessionStorage.getItem("aigc.lastUser") || "" });
    const userField = field(t("signin.user"), user, { hint: t("signin.userHint"), name: "user" });
    const admin = h("input", { type: "checkbox", name: "admin" });
    const adminField = field(t("signin.admin"), admin, { check: true, hint: t("signin.adminHint") });
    const error = h("div", { class: "error-box form-error", role: "alert", hidden: true });
    const form = h("form", { novalidate: true }, userField, adminField, error,
      h("button", { type: "submit" }, t("signin.submit")));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      setFieldError(userField, "");
      error.hidden = true;
      const name = user.value.trim();
      if (!name) {
        setFieldError(userField, t("form.required"));
        user.focus();
        return;
      }
      try {
        await auth.signInLocal(name, admin.checked);
        sessionStorage.setItem("aigc.lastUser", name);
        banner("");
        signedIn();
      } catch (failure) {
        setFieldError(userField, failure.message);
        user.focus();
      }
    });
    put(panel, form, h("p", { class: "small muted" }, t("signin.localNote")));
    setTimeout(() => user.focus(), 0);
    return null;
  }

  const go = h("button", { type: "button" }, t("signin.hosted"));
  go.addEventListener("click", () => auth.startOidc("user"));
  put(panel, go);
  return null;
}
