/** Runs in the worker of thread.ts: starts a test server, posts its URL, closes it when asked. */
import { parentPort } from 'node:worker_threads';
import { startEventStoreDbTestServer } from './index.ts';

const server = await startEventStoreDbTestServer();
parentPort!.once('message', () => {
  void server.close().then(() => parentPort!.postMessage('closed'));
});
parentPort!.postMessage({ url: server.url });
