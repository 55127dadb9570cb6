import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';

export interface ReadinessCheck {
  name: string;
  /** Returns undefined when ready, or why not. */
  check: () => string | undefined | Promise<string | undefined>;
}

/**
 * /healthz (the process answers), /readyz (every check passes, else 503 with the reasons) and
 * /metrics (Prometheus text). Shared by the webhook and the callback.
 */
export function registerOpsRoutes(app: FastifyInstance, registry: Registry, checks: readonly ReadinessCheck[] = []): void {
  app.get('/healthz', { logLevel: 'silent' }, async () => ({ status: 'ok' }));
  app.get('/readyz', { logLevel: 'silent' }, async (_req, reply) => {
    const failing: Record<string, string> = {};
    for (const c of checks) {
      const why = await c.check();
      if (why !== undefined) failing[c.name] = why;
    }
    if (Object.keys(failing).length > 0) return reply.code(503).send({ status: 'not ready', failing });
    return { status: 'ready' };
  });
  app.get('/metrics', { logLevel: 'silent' }, async (_req, reply) => {
    reply.header('content-type', registry.contentType);
    return registry.metrics();
  });
}
