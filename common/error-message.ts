/**
 * What was thrown, as one line of text for a log or an error reply. Never throws itself, whatever was
 * thrown (an object whose toString throws is still an error to report, not a second one).
 */
export function errorMessage(err: unknown): string {
  try {
    return err instanceof Error ? err.message : String(err);
  } catch {
    return 'an error that cannot be printed';
  }
}
