import { afterAll, beforeAll } from 'vitest';
import { openJetStreamStore } from '../../../callback/store/jetstream/index.js';
import { startNatsServer, type NatsServer } from '../../helpers/nats-server.js';
import { storeContract } from './store.contract.js';

// A real nats-server with JetStream (file storage) on a free port; each store gets its own buckets.
let nats: NatsServer;
beforeAll(async () => {
  nats = await startNatsServer();
});
afterAll(async () => {
  await nats?.dispose();
});

let n = 0;
storeContract({ name: 'jetstream (real nats-server, file storage)', open: () => openJetStreamStore({ servers: [nats.url], prefix: `contract-${n++}` }) });
