import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { afterAll, describe, expect, it } from 'vitest';
import { startNatsServer, type NatsServer } from '../helpers/nats-server.js';

// The helper every NATS test builds on: a real nats-server with JetStream on a free port, whose file
// store survives a restart.
describe('test helper: nats-server', () => {
  let server: NatsServer | undefined;
  afterAll(async () => server?.dispose());

  it('starts JetStream on a free port, keeps a stream across a restart, and is not the shared 4222', async () => {
    server = await startNatsServer();
    expect(server.port).not.toBe(4222);
    let nc = await connect({ servers: server.url });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'HELPER', subjects: ['helper.>'] });
    const ack = await jetstream(nc).publish('helper.one', 'x', { msgID: 'id-1' });
    expect(ack.seq).toBe(1);
    await nc.close();

    await server.kill();
    await server.start();
    nc = await connect({ servers: server.url });
    const info = await (await jetstreamManager(nc)).streams.info('HELPER');
    expect(info.state.messages).toBe(1);
    await nc.close();
  });
});
