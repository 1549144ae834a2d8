// A loopback port for a throwaway service the tests or the bench start (nginx, PostgreSQL): asked
// of the kernel, so two runs on one machine do not collide on a fixed port.
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';

/** A loopback port free now (the service binds it a moment later; its starter retries if someone took it meanwhile). */
export async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}
