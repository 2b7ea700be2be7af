import { totpCode } from "../factors/totp.ts";

// `pnpm totp <base32 secret>`: prints the current code, standing in for an authenticator app in development.
const secret = process.argv[2];
if (!secret) {
  process.stderr.write("usage: pnpm totp <base32 secret>\n");
  process.exit(2);
}
process.stdout.write(`${totpCode(secret, Math.floor(Date.now() / 1000))}\n`);
