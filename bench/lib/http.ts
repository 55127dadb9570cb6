import { Agent, request } from 'undici';

/** One request outside the measured load: the sanity checks a bench makes before it trusts a server. */
export async function post(url: string, body: string, opts: { ca?: string; headers?: Record<string, string> } = {}): Promise<{ status: number; text: string }> {
  const dispatcher = new Agent({ connect: opts.ca ? { ca: opts.ca } : {} });
  try {
    const res = await request(url, { method: 'POST', body, headers: { 'content-type': 'application/json', ...opts.headers }, dispatcher });
    return { status: res.statusCode, text: await res.body.text() };
  } finally {
    await dispatcher.close();
  }
}

/** Unlabelled samples of a Prometheus text page: `name value` lines (histogram _sum and _count among them). */
export async function scrape(url: string): Promise<Record<string, number>> {
  const res = await request(url);
  const out: Record<string, number> = {};
  for (const line of (await res.body.text()).split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*) (\S+)$/.exec(line);
    if (m?.[1] && m[2]) out[m[1]] = Number(m[2]);
  }
  return out;
}
