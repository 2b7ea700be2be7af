/** Milliseconds since the epoch; one place to read time so tests and logic agree. */
export type Clock = () => number;

export const systemClock: Clock = () => Date.now();

export const toSeconds = (ms: number) => Math.floor(ms / 1000);
