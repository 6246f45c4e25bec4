/** Who is signed in: the token (kept in this tab's sessionStorage only) and what its claims allow. */

const KEY = 'its.token';

/** Reads a JWT's claims without verifying them: ITS verifies; the page only needs to know what to show. */
export function readClaims(token) {
  const parts = token.split('.');
  if (parts.length !== 3) throw new Error('this is not a JWT: it should have three parts separated by dots');
  let claims;
  try {
    const base64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    claims = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new Error('the token’s claims cannot be read');
  }
  if (typeof claims?.sub !== 'string' || typeof claims.orgs !== 'object' || claims.orgs === null)
    throw new Error('the token lacks the claims ITS needs (sub, orgs)');
  if (Object.keys(claims.orgs).length === 0) throw new Error('the token grants access to no organization');
  if (typeof claims.exp === 'number' && claims.exp * 1000 <= Date.now())
    throw new Error('the token has expired');
  return claims;
}

export class Session {
  /** @param {string} token @param {object} claims @param {{ operationRoles: Record<string, string[]> }} contract */
  constructor(token, claims, contract) {
    this.token = token;
    this.claims = claims;
    this.contract = contract;
  }

  get name() {
    return this.claims.name ? `${this.claims.name} (${this.claims.sub})` : this.claims.sub;
  }

  get orgs() {
    return Object.keys(this.claims.orgs).sort();
  }

  roles(org) {
    return Object.hasOwn(this.claims.orgs, org) ? this.claims.orgs[org] : [];
  }

  /** Whether the roles in `org` allow an operation of API.md's roles table (readIncidents, changeStatus, …). */
  can(org, operation) {
    const allowed = this.contract.operationRoles[operation] ?? [];
    return this.roles(org).some((role) => allowed.includes(role));
  }
}

export function storedToken() {
  return sessionStorage.getItem(KEY);
}

export function storeToken(token) {
  sessionStorage.setItem(KEY, token);
}

export function forgetToken() {
  sessionStorage.removeItem(KEY);
}
