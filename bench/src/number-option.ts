/**
 * A numeric command-line option: `fallback` when absent, else its value, which must be a finite
 * number of at least `min`. Throws an Error naming `--<name>` otherwise.
 */
export function numberOption(name: string, value: string | undefined, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < min) throw new Error(`--${name} must be a number of at least ${min}`);
  return n;
}
