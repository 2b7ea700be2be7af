import assert from "node:assert/strict";
import http2 from "node:http2";
import { after, before, describe, it } from "node:test";
import { type Harness, startStepgate } from "./support/stepgate.ts";

// HTTP/2 ENHANCE_YOUR_CALM.
const enhanceYourCalm = 11;

describe("keepalive enforcement", () => {
  let h: Harness;
  before(async () => {
    h = await startStepgate();
  });
  after(() => h.close());

  const connect = async () => {
    const session = http2.connect(`http://${h.target}`);
    session.on("error", () => {});
    await new Promise((resolve) => session.once("connect", resolve));
    return session;
  };
  const ping = (session: http2.ClientHttp2Session) =>
    new Promise<boolean>((resolve) => {
      if (session.destroyed || session.closed) return resolve(false);
      try {
        session.ping((error) => resolve(!error));
      } catch {
        resolve(false);
      }
    });

  it("sends GOAWAY ENHANCE_YOUR_CALM to a client that pings with no calls, faster than allowed", async () => {
    const session = await connect();
    const goaway = new Promise<number>((resolve) => session.once("goaway", (code) => resolve(code)));
    let answered = 0;
    for (let i = 0; i < 10 && (await ping(session)); i++) answered++;
    assert.equal(await goaway, enhanceYourCalm);
    // The first ping and two strikes are tolerated (grpc core's default of 2 strikes); HTTP/2
    // acknowledges the third strike's ping before the GOAWAY goes out.
    assert.equal(answered, 4);
    session.destroy();
  });

  it("leaves a well-behaved client alone, and grpc clients keep working", async () => {
    const session = await connect();
    let closed = false;
    session.once("goaway", () => {
      closed = true;
    });
    assert.equal(await ping(session), true);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(closed, false);
    session.destroy();
    const jwks = await h.client.stepUp.getJwks({});
    assert.equal(jwks.keys.length, 1);
  });
});
