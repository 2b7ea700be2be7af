// The payments page: enrols an authenticator app (QR code) and a passkey, sends transfers, and
// answers the step-up the guarded TransferService asks for. The server keeps the grants; this file
// runs the browser's side only.
const $ = (id) => /** @type {HTMLInputElement} */ (document.getElementById(id));

/** Shows `text` in #status; `kind` is busy, ok, stepup or error (tests wait on data-kind). */
function show(text, kind) {
  $("status").textContent = text;
  $("status").dataset.kind = kind;
}

/** POSTs `body` as JSON; resolves with the JSON answer, rejects with it as `error.answer` on a non-2xx status. */
async function post(path, body) {
  const res = await fetch(path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = await res.json();
  if (!res.ok) throw Object.assign(new Error(answer.message), { answer });
  return answer;
}

/** One line for what went wrong: the server's reason and refusal, or the browser's error name. */
function describe(error) {
  const a = error.answer;
  if (a) return a.refusal ? `${a.error} (${a.refusal})` : `${a.error}: ${a.message}`;
  // The browser hides why a ceremony failed (cancelled, timed out, no user verification).
  if (error instanceof DOMException) return `${error.name} from the browser`;
  return String(error);
}

// Why the guard asked again, in the user's words (grant_refusal of the STEP_UP_REQUIRED error).
const refusalText = {
  GRANT_MISSING: "",
  GRANT_CONSUMED: "Your last approval was for one transfer only and has been used.",
  GRANT_EXPIRED: "Your last approval has expired.",
  GRANT_MISMATCH: "Your last approval was for another kind of action.",
  GRANT_TRANSACTION_MISMATCH: "Your last approval was for another transfer.",
  GRANT_REVOKED: "Your last approval was withdrawn.",
};

let challengeId = "";
let passkeyOptions;

/** Shows the approval panel for a STEP_UP_REQUIRED answer; returns the status line. */
function askForStepUp(a) {
  if (!a.challenge) {
    $("approval").hidden = true;
    return `Add a second factor first (${a.enrollmentRequired.methods.join(" or ")}) to approve this`;
  }
  const c = a.challenge;
  challengeId = c.challengeId;
  passkeyOptions = c.passkeyRequestOptions;
  $("approval-summary").textContent = c.summary;
  const freshness = a.maxAge === 0 ? "for this transfer only" : `valid for ${a.maxAge} s`;
  const why = a.rule ? ` (policy rule ${a.rule})` : "";
  $("approval-need").textContent = `Needs ${a.acrValues.join(" or ")}, ${freshness}${why}`;
  $("approval-reason").textContent = refusalText[a.grantRefusal] ?? a.grantRefusal;
  $("approval-totp").hidden = !c.methods.includes("totp");
  $("approve-passkey").hidden = !c.methods.includes("passkey");
  $("approval-code").value = "";
  $("approval").hidden = false;
  return `Approve: ${c.summary}`;
}

/** Runs `task` with the buttons disabled, showing what it resolves to or why it failed. */
async function run(busyText, failPrefix, task) {
  for (const b of document.querySelectorAll("button")) b.disabled = true;
  show(busyText, "busy");
  try {
    show(await task(), "ok");
  } catch (error) {
    if (error.answer?.error === "STEP_UP_REQUIRED") show(askForStepUp(error.answer), "stepup");
    else show(`${failPrefix}: ${describe(error)}`, "error");
  } finally {
    for (const b of document.querySelectorAll("button")) b.disabled = false;
  }
}

const who = () => ({ user: $("user").value, session: $("session").value });
let totpFactorId = "";

async function enrolTotp() {
  const { factorId, qr, secret } = await post("/api/totp/begin", who());
  totpFactorId = factorId;
  $("totp-qr").src = qr;
  $("totp-secret").textContent = secret;
  $("totp-code").value = "";
  $("totp-setup").hidden = false;
  return "Scan the QR code, then confirm with a code";
}

async function confirmTotp() {
  await post("/api/totp/confirm", { ...who(), factorId: totpFactorId, code: $("totp-code").value });
  $("totp-setup").hidden = true;
  $("totp-secret").textContent = "";
  return "Authenticator app added";
}

async function enrolPasskey() {
  const { factorId, creationOptions } = await post("/api/passkeys/begin", who());
  const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(creationOptions);
  const credential = await navigator.credentials.create({ publicKey });
  await post("/api/passkeys/finish", { user: who().user, factorId, credential: credential.toJSON() });
  return "Passkey enrolled";
}

/** The line for an answer: a transfer sent, or an approval recorded (factor changes). */
function outcome(answer) {
  $("approval").hidden = true;
  if (answer.status === "sent") return `Transfer sent: ${answer.acr} ${answer.amr.join(" ")}`;
  return `Approved: ${answer.acr} ${answer.amr.join(" ")}; try again`;
}

async function send() {
  const transfer = {
    ...who(),
    amount: $("amount").value,
    currency: $("currency").value,
    payee: $("payee").value,
    fromAccount: $("from-account").value,
  };
  return outcome(await post("/api/transfers", transfer));
}

async function approveWithCode() {
  return outcome(await post("/api/step-up/verify", { challengeId, code: $("approval-code").value }));
}

async function approveWithPasskey() {
  const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(passkeyOptions);
  const credential = await navigator.credentials.get({ publicKey });
  return outcome(await post("/api/step-up/verify", { challengeId, credential: credential.toJSON() }));
}

// A session id per page load stands in for the sign-in session a real service would have.
$("session").value = `s-${crypto.randomUUID()}`;
$("enrol-totp").addEventListener("click", () => run("Starting…", "Could not add the app", enrolTotp));
$("confirm-totp").addEventListener("click", () => run("Checking…", "Could not add the app", confirmTotp));
$("enrol").addEventListener("click", () => run("Creating a passkey…", "Enrolment failed", enrolPasskey));
$("send").addEventListener("click", () => run("Sending…", "Transfer refused", send));
$("approve-code").addEventListener("click", () => run("Approving…", "Transfer refused", approveWithCode));
$("approve-passkey").addEventListener("click", () =>
  run("Approving…", "Transfer refused", approveWithPasskey),
);
if (!window.PublicKeyCredential?.parseCreationOptionsFromJSON) {
  show("This browser cannot run passkeys (no PublicKeyCredential.parseCreationOptionsFromJSON)", "error");
}
