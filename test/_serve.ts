import { startStepgate } from "./support/stepgate.ts";

const h = await startStepgate({ redis: true });
console.log("PORT", h.port);
setTimeout(() => void h.close(), 240_000);
