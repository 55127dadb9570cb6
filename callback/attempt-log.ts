import type { SentRequest } from './store/types.js';
import type { Subscriber } from './types.js';

/**
 * What the attempt log keeps of a request: everything the subscriber got, except secrets. Masked here,
 * before the store sees it, so no page, log or backup of the database holds a secret:
 * - webhook-signature (an HMAC of the body: with the body, it is an oracle for the signing key);
 * - Authorization, whatever its source;
 * - every header whose value came from a Secret (Subscriber.secretHeaders, set by the parser);
 * - the URL's path and query (a Slack or Teams webhook URL is itself the credential): origin only.
 */

export const MASK = '[masked]';
const ALWAYS_MASKED = new Set(['webhook-signature', 'authorization', 'proxy-authorization']);

export function maskHeaders(headers: Readonly<Record<string, string>>, secretHeaders: readonly string[] = []): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    out[name] = ALWAYS_MASKED.has(lower) || secretHeaders.includes(lower) ? MASK : value;
  }
  return out;
}

/** The origin of a URL ('' when it does not parse). */
export function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return '';
  }
}

export function sentRequest(req: { url: string; headers: Readonly<Record<string, string>>; body: string }, sub: Pick<Subscriber, 'secretHeaders'>): SentRequest {
  return { url: originOf(req.url), headers: maskHeaders(req.headers, sub.secretHeaders), body: req.body };
}
