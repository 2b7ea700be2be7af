/** Options of `groupCommit`. */
export interface GroupCommitOptions<I, O> {
  /** Most inputs in one batch. */
  maxBatch: number;
  /** Inputs with the same key never share a batch: the later one waits for the next. */
  keyOf: (input: I) => string;
  /** Runs one batch; resolves with one output per input, in order. A rejection fails every input in it. */
  run: (batch: I[]) => Promise<O[]>;
}

interface Waiting<I, O> {
  input: I;
  resolve: (output: O) => void;
  reject: (error: unknown) => void;
}

/**
 * Group commit: a lone input runs at once, and inputs that arrive while a batch is in flight wait
 * for it and then run together as the next one. Under concurrency N calls pay one statement and
 * one commit instead of N; alone, a call waits for nothing. One batch is in flight at a time.
 */
export function groupCommit<I, O>(options: GroupCommitOptions<I, O>): (input: I) => Promise<O> {
  const queue: Waiting<I, O>[] = [];
  let inFlight = false;
  const next = () => {
    const batch = takeBatch(queue, options);
    if (batch.length === 0) return;
    inFlight = true;
    options
      .run(batch.map((w) => w.input))
      .then(
        (outputs) => {
          for (const [i, w] of batch.entries()) w.resolve(outputs[i] as O);
        },
        (error: unknown) => {
          for (const w of batch) w.reject(error);
        },
      )
      .finally(() => {
        inFlight = false;
        next();
      });
  };
  return (input) =>
    new Promise<O>((resolve, reject) => {
      queue.push({ input, resolve, reject });
      if (!inFlight) next();
    });
}

/** Takes up to `maxBatch` waiting inputs with distinct keys, oldest first; the rest keep their places. */
function takeBatch<I, O>(queue: Waiting<I, O>[], { maxBatch, keyOf }: GroupCommitOptions<I, O>) {
  const keys = new Set<string>();
  const batch: Waiting<I, O>[] = [];
  const rest: Waiting<I, O>[] = [];
  for (const waiting of queue) {
    const key = keyOf(waiting.input);
    if (batch.length >= maxBatch || keys.has(key)) rest.push(waiting);
    else {
      keys.add(key);
      batch.push(waiting);
    }
  }
  queue.splice(0, queue.length, ...rest);
  return batch;
}
