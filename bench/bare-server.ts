/** The HTTP baseline: a bare Fastify route that does one INSERT into the same database. */
import Fastify from 'fastify';
import pg from 'pg';

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 20 });
await pool.query(
  'create table if not exists bench_bare (id bigint generated always as identity primary key, body jsonb not null, created_at timestamptz not null default now())',
);
const app = Fastify({ logger: false });
app.get('/health', async () => ({ ok: true }));
app.post('/insert', async (request, reply) => {
  const { rows } = await pool.query<{ id: string }>(
    'insert into bench_bare (body) values ($1) returning id',
    [JSON.stringify(request.body)],
  );
  return reply.code(201).send({ id: rows[0]!.id });
});
await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' });
process.on('SIGTERM', () => {
  void app
    .close()
    .then(() => pool.end())
    .then(() => process.exit(0));
});
