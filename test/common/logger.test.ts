import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { CENSOR, createLogger, redactSecrets } from '../../common/logger.js';

/** A real logger (createLogger's settings) writing to memory; the lines it wrote, parsed. */
function capture(): { log: ReturnType<typeof createLogger>; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  const log = createLogger({ level: 'debug', destination });
  return { log, lines: () => chunks.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe('log redaction', () => {
  it('blanks secrets at the top of a line and one level down, whatever object carries them', () => {
    const { log, lines } = capture();
    log.info({ token: 't0k3n', hookKey: { kid: 'k', secret: Buffer.from('hook-secret') }, uid: 'u1' }, 'top');
    log.info({ subscriber: { name: 'slack', signingKeys: ['whsec_abc'], headers: { 'x-api-key': 'k3y' } }, options: { hookKey: 'hk', callbackUrl: 'http://cb' } }, 'nested');
    log.info({ req: { method: 'POST', headers: { authorization: 'Bearer abc', 'user-agent': 'curl' } } }, 'request');
    log.info({ headers: { authorization: 'Bearer abc', 'webhook-signature': 'v1,sig', 'content-type': 'application/json' } }, 'headers');
    log.child({ signingKey: 'child-secret', subscriber: 'slack' }).info('child');
    log.child({ component: 'worker' }).child({ token: 'grandchild-secret' }).info('grandchild');
    const all = JSON.stringify(lines());
    for (const secret of ['t0k3n', 'hook-secret', 'aG9vay1zZWNyZXQ', 'whsec_abc', 'k3y', 'Bearer abc', 'v1,sig', 'child-secret', 'grandchild-secret', '"hk"']) expect(all).not.toContain(secret);
    const [top, nested, request, headers, child, grandchild] = lines();
    expect(top).toMatchObject({ token: CENSOR, hookKey: CENSOR, uid: 'u1' });
    expect(nested).toMatchObject({ subscriber: { name: 'slack', signingKeys: CENSOR, headers: CENSOR }, options: { hookKey: CENSOR, callbackUrl: 'http://cb' } });
    expect(request).toMatchObject({ req: { method: 'POST', headers: CENSOR } });
    expect(headers).toMatchObject({ headers: { authorization: CENSOR, 'webhook-signature': CENSOR, 'content-type': 'application/json' } });
    expect(child).toMatchObject({ signingKey: CENSOR, subscriber: 'slack' });
    expect(grandchild).toMatchObject({ component: 'worker', token: CENSOR });
  });

  it('never changes the caller’s objects, and returns a line without secrets as it is', () => {
    const inner = { name: 'slack', signingKeys: ['whsec_abc'] };
    const line = { subscriber: inner, n: 1 };
    const out = redactSecrets(line);
    expect(out).toEqual({ subscriber: { name: 'slack', signingKeys: CENSOR }, n: 1 });
    expect(inner.signingKeys).toEqual(['whsec_abc']);
    const clean = { uid: 'u', outcome: 'injected', nested: { patchOps: 9 } };
    expect(redactSecrets(clean)).toBe(clean);
  });

  it('keeps an error whole for pino’s serializer (its message and stack)', () => {
    const { log, lines } = capture();
    log.error({ err: Object.assign(new Error('boom'), { headers: { server: 'x' } }) }, 'failed');
    expect(lines()[0]).toMatchObject({ err: { message: 'boom', type: 'Error' } });
  });
});
