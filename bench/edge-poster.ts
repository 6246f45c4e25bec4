/**
 * The attackers of the `edge` scenario, in a process of their own (as another user's clients are):
 * `POSTERS` loops posting 1 MiB of tiny items to the URL until told to stop over IPC, then answering
 * with how the posts ended (by status, or `error` when the server closed the socket mid-upload).
 */
const [url, authorization, posters] = process.argv.slice(2) as [string, string, string];
/** The largest `{"tags":[0,0,…]}` within the 1 MiB body limit: 524,283 tiny items. */
const TINY_ITEMS = (1024 * 1024 - 10) / 2;
const body = Buffer.from(`{"tags":[${Array.from({ length: TINY_ITEMS }, () => '0').join(',')}]}`);

let posting = true;
const answers: Record<string, number> = {};
process.on('message', () => {
  posting = false;
});
await Promise.all(
  Array.from({ length: Number(posters) }, async () => {
    while (posting) {
      let outcome: string;
      try {
        const response = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization },
          body,
        });
        await response.arrayBuffer();
        outcome = String(response.status);
      } catch {
        outcome = 'error';
      }
      answers[outcome] = (answers[outcome] ?? 0) + 1;
    }
  }),
);
process.send!(answers, () => process.exit(0));
