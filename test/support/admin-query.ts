import pg from 'pg';

/** One statement on its own connection: creating and dropping databases cannot share a pool. Free of vitest, so the bench can import it. */
export async function adminQuery(url: string, text: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}
