/** What is safe to log of an unexpected error: driver messages can embed query parameters. */
export function describeError(error: unknown): Record<string, unknown> {
  if (!(error instanceof Error)) return { type: typeof error };
  const code = (error as { code?: unknown }).code;
  const message = error.message.includes(" - ")
    ? error.message.slice(error.message.lastIndexOf(" - ") + 3)
    : error.message;
  return { name: error.name, ...(code === undefined ? {} : { code }), message: message.slice(0, 200) };
}
