/**
 * The attackers of the `edge` scenario, in a process of their own (as another user's clients are):
 * `POSTERS` loops posting 1 MiB of tiny items to the URL until told to stop over IPC, then answering
 * with how the posts ended (by status, or `error` when no status line came back).
 *
 * Each post is one request written whole on a fresh socket, as `curl` or an attack script would send
 * it: with `fetch` the posters spent ~1.9 ms of CPU a post, the better part of a core of the two, and
 * the figure measured the load generator's share of the machine more than the server's.
 */
import { connect } from 'node:net';

const [url, authorization, posters] = process.argv.slice(2) as [string, string, string];
/** The largest `{"tags":[0,0,…]}` within the 1 MiB body limit: 524,283 tiny items. */
const TINY_ITEMS = (1024 * 1024 - 10) / 2;
const body = Buffer.from(`{"tags":[${Array.from({ length: TINY_ITEMS }, () => '0').join(',')}]}`);
const target = new URL(url);
const head = Buffer.from(
  `POST ${target.pathname} HTTP/1.1\r\nhost: ${target.host}\r\ncontent-type: application/json\r\n` +
    `authorization: ${authorization}\r\ncontent-length: ${body.length}\r\n\r\n`,
);

/** One post: the status the server answered, or `error`. The server closes the socket after its early answer. */
function post(): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(Number(target.port), target.hostname);
    let answer = '';
    socket.on('connect', () => {
      socket.write(head);
      socket.end(body);
    });
    socket.on('data', (bytes: Buffer) => {
      if (answer.length < 16) answer += bytes.toString('latin1', 0, 16);
    });
    // The server stops reading once it has refused the body: the rest of the upload fails, as sent.
    socket.on('error', () => {});
    socket.on('close', () => resolve(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 'error'));
  });
}

let posting = true;
const answers: Record<string, number> = {};
process.on('message', () => {
  posting = false;
});
await Promise.all(
  Array.from({ length: Number(posters) }, async () => {
    while (posting) {
      const outcome = await post();
      answers[outcome] = (answers[outcome] ?? 0) + 1;
    }
  }),
);
process.send!(answers, () => process.exit(0));
