// The payments page: enrols a passkey and approves a transfer with it. The server relays the WebAuthn
// options and answers to Stepgate; this file only runs the browser's ceremonies.
const $ = (id) => /** @type {HTMLInputElement} */ (document.getElementById(id));

/** Shows `text` in #status; `kind` is busy, ok or error (tests wait on data-kind). */
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

/** One line for what went wrong: Stepgate's reason and refusal, or the browser's error name. */
function describe(error) {
  const a = error.answer;
  if (a) return a.refusal ? `${a.error} (${a.refusal})` : `${a.error}: ${a.message}`;
  // The browser hides why a ceremony failed (cancelled, timed out, no user verification).
  if (error instanceof DOMException) return `${error.name} from the browser`;
  return String(error);
}

/** Runs `task` with both buttons disabled, showing what it resolves to or why it failed. */
async function run(busyText, failPrefix, task) {
  for (const b of document.querySelectorAll("button")) b.disabled = true;
  show(busyText, "busy");
  try {
    show(await task(), "ok");
  } catch (error) {
    show(`${failPrefix}: ${describe(error)}`, "error");
  } finally {
    for (const b of document.querySelectorAll("button")) b.disabled = false;
  }
}

async function enrol() {
  const user = $("user").value;
  const { factorId, creationOptions } = await post("/api/passkeys/begin", { user });
  const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(creationOptions);
  const credential = await navigator.credentials.create({ publicKey });
  await post("/api/passkeys/finish", { user, factorId, credential: credential.toJSON() });
  return "Passkey enrolled";
}

async function approve() {
  const transfer = {
    user: $("user").value,
    session: $("session").value,
    amount: $("amount").value,
    payee: $("payee").value,
  };
  let answer = await post("/api/transfers/approve", transfer);
  if (answer.status === "challenge") {
    const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(answer.requestOptions);
    const credential = await navigator.credentials.get({ publicKey });
    answer = await post("/api/transfers/verify", {
      challengeId: answer.challengeId,
      credential: credential.toJSON(),
    });
  }
  return `Transfer approved: ${answer.acr} ${answer.amr.join(" ")}`;
}

// A session id per page load stands in for the sign-in session a real service would have.
$("session").value = `s-${crypto.randomUUID()}`;
$("enrol").addEventListener("click", () => run("Creating a passkey…", "Enrolment failed", enrol));
$("approve").addEventListener("click", () => run("Approving…", "Transfer refused", approve));
if (!window.PublicKeyCredential?.parseCreationOptionsFromJSON) {
  show("This browser cannot run passkeys (no PublicKeyCredential.parseCreationOptionsFromJSON)", "error");
}
