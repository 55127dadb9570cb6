import Fastify from 'fastify';
import { HOOK_PATH } from '../../common/hook-contract.js';
import { serveRpc } from '../lib/rpc.js';

/**
 * The ingest baseline: a bare Fastify POST route on the hook path that parses the same form body and
 * answers a fixed 202, with nothing stored. What any Node receiver pays before it does anything.
 */

const app = Fastify({ logger: false });
app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
  done(null, Object.fromEntries(new URLSearchParams(String(body))));
});
const FIXED = { eventIds: ['evt_00000000000000000000000000000000'], duplicates: [] };
app.post(HOOK_PATH, async (req, reply) => reply.code(202).send(req.body === undefined ? { error: 'no body' } : FIXED));
await app.listen({ host: '127.0.0.1', port: 0 });
const { port } = app.server.address() as { port: number };
serveRpc({ ready: () => ({ url: `http://127.0.0.1:${port}` }) });
