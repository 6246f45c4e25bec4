/** The ITS API over fetch: bearer token, JSON in and out, problems as ApiError with their `detail`. */

export class ApiError extends Error {
  constructor(status, problem) {
    const fields = (problem.errors ?? []).map((error) => `${error.path}: ${error.message}`);
    const detail = problem.detail ?? problem.title ?? `the request failed with HTTP ${status}`;
    super(fields.length ? `${detail} (${fields.join('; ')})` : detail);
    this.status = status;
    this.code = problem.code ?? null;
  }
}

/** Query string from an object, skipping empty values; arrays become comma-separated lists. */
export function queryString(query = {}) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined || value === null || value === '') continue;
    if (Array.isArray(value)) {
      if (value.length) params.set(key, value.join(','));
    } else params.set(key, String(value));
  }
  const text = params.toString();
  return text ? `?${text}` : '';
}

/**
 * `api.get(path, query)` → `{ body, etag }`; `api.send(method, path, body, headers)` likewise.
 * A 401 calls `onUnauthenticated` (the session is over) and still throws.
 */
export function createApi(token, onUnauthenticated) {
  async function call(method, path, { query, body, headers } = {}) {
    let response;
    try {
      response = await fetch(`${path}${queryString(query)}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          accept: 'application/json',
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...headers,
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
      });
    } catch (error) {
      throw new ApiError(0, {
        detail: `ITS did not answer (${error.message}); check the connection and retry`,
      });
    }
    const text = await response.text();
    let parsed = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      parsed = null;
    }
    if (!response.ok) {
      const error = new ApiError(response.status, parsed ?? {});
      if (response.status === 401) onUnauthenticated(error.message);
      throw error;
    }
    return { body: parsed, etag: response.headers.get('etag'), status: response.status };
  }
  return {
    token,
    get: (path, query) => call('GET', path, { query }),
    send: (method, path, body, headers) => call(method, path, { body, headers }),
  };
}

/** A key that makes a retried submit (a double click, a flaky network) land once. */
export function idempotencyKey() {
  // getRandomValues, unlike randomUUID, also works when ITS is reached over plain http on a LAN address.
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (byte) =>
    byte.toString(16).padStart(2, '0'),
  ).join('');
}
