import { readFileSync } from 'node:fs';
import Fastify from 'fastify';
import { childConfig, serveRpc } from '../lib/rpc.js';

/**
 * The admission baseline: a bare Fastify HTTPS route that parses the AdmissionReview (Fastify's JSON
 * parser, the same body limit and TLS floor as the webhook) and answers a fixed AdmissionReview. What
 * any Node webhook pays before it does anything.
 */

/** `answerFile`: raw JSON to answer instead of the small fixed review (the webhook's own answer, as a diagnostic). */
const cfg = childConfig<{ certFile: string; keyFile: string; bodyLimit: number; answerFile?: string }>();
const app = Fastify({
  https: { cert: readFileSync(cfg.certFile), key: readFileSync(cfg.keyFile), minVersion: 'TLSv1.2' },
  bodyLimit: cfg.bodyLimit,
  logger: false,
});
const FIXED = { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: '705ab4f5-6393-11e8-b7cc-42010a800002', allowed: true } };
const answer = cfg.answerFile === undefined ? undefined : readFileSync(cfg.answerFile, 'utf8');
app.post('/mutate', async (req, reply) => {
  if (req.body === undefined) return reply.code(400).send({ error: 'no body' });
  return answer === undefined ? FIXED : reply.type('application/json; charset=utf-8').send(answer);
});
await app.listen({ host: '127.0.0.1', port: 0 });
const { port } = app.server.address() as { port: number };
serveRpc({ ready: () => ({ url: `https://127.0.0.1:${port}` }) });
