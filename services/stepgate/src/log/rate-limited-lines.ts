/** Writes one occurrence of `key` with its details, or the count of those left unwritten. */
export type WriteLine<K, D> = (line: { key: K; first: D } | { key: K; suppressed: number }) => void;

/**
 * Writes at most one line per key per `intervalMs`: the first occurrence of a key at once (`first`),
 * then, when its interval ends and more occurred meanwhile, one line with their count
 * (`suppressed`), which opens the next interval. A key quiet for a whole interval starts afresh.
 * Its timers do not keep the process alive. Returns the function to call on each occurrence.
 */
export function rateLimitedLines<K, D>(
  intervalMs: number,
  write: WriteLine<K, D>,
): (key: K, details: D) => void {
  const suppressed = new Map<K, number>();
  const openInterval = (key: K) => {
    suppressed.set(key, 0);
    setTimeout(() => {
      const count = suppressed.get(key) ?? 0;
      if (count === 0) {
        suppressed.delete(key);
        return;
      }
      write({ key, suppressed: count });
      openInterval(key);
    }, intervalMs).unref();
  };
  return (key, details) => {
    const count = suppressed.get(key);
    if (count !== undefined) {
      suppressed.set(key, count + 1);
      return;
    }
    write({ key, first: details });
    openInterval(key);
  };
}
