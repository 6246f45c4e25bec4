import { lookup as dnsLookup } from 'node:dns/promises';
import { BlockList, isIP, type LookupFunction } from 'node:net';

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** Name → addresses; injectable so tests can make a name resolve to what they need. */
export type Resolver = (hostname: string) => Promise<ResolvedAddress[]>;

export const systemResolver: Resolver = async (hostname) =>
  (await dnsLookup(hostname, { all: true, verbatim: true })).map(({ address, family }) => ({
    address,
    family: family === 6 ? 6 : 4,
  }));

/** Loopback, private, link-local, unique-local and other non-public ranges (IPv4 and IPv6). */
const PRIVATE = new BlockList();
for (const [network, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const)
  PRIVATE.addSubnet(network, prefix, 'ipv4');
for (const [network, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
] as const)
  PRIVATE.addSubnet(network, prefix, 'ipv6');

/** `::ffff:a.b.c.d` or `::ffff:xxxx:yyyy` → `a.b.c.d`: an IPv6 socket reaches that IPv4 address. */
function mappedIpv4(address: string): string | null {
  const match = /^(?:0{0,4}:){0,5}:?ffff:(?:(\d+\.\d+\.\d+\.\d+)|([0-9a-f]{1,4}):([0-9a-f]{1,4}))$/i.exec(
    address,
  );
  if (!match) return null;
  if (match[1]) return match[1];
  const high = parseInt(match[2]!, 16);
  const low = parseInt(match[3]!, 16);
  return [high >> 8, high & 255, low >> 8, low & 255].join('.');
}

export function isPrivateAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return true;
  if (family === 4) return PRIVATE.check(address, 'ipv4');
  const mapped = mappedIpv4(address);
  return mapped !== null ? PRIVATE.check(mapped, 'ipv4') : PRIVATE.check(address, 'ipv6');
}

/** A delivery refused before connecting: the address is not a public one. */
export class AddressRefused extends Error {
  override readonly name = 'AddressRefused';
  readonly code = 'EADDRREFUSED';
}

/** The hostname of a URL as net wants it: IPv6 literals without their brackets. */
export const bareHost = (url: URL): string => url.hostname.replace(/^\[(.*)\]$/, '$1');

/**
 * Decides which addresses a webhook may reach. Checked when an endpoint is registered and again on
 * every connection (the lookup below and the connected socket), so a name that later resolves to a
 * private address (DNS rebinding) is never connected to.
 */
export class AddressGuard {
  constructor(
    readonly allowPrivate: boolean,
    private readonly resolve: Resolver = systemResolver,
  ) {}

  /** Why this URL may not be registered, or null when it may. */
  async refuseUrl(text: string): Promise<string | null> {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      return 'is not a URL';
    }
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && this.allowPrivate))
      return this.allowPrivate ? 'must be an http or https URL' : 'must be an https URL';
    if (this.allowPrivate) return null;
    const host = bareHost(url);
    if (isIP(host)) return isPrivateAddress(host) ? `${host} is not a public address` : null;
    try {
      const addresses = await this.resolve(host);
      if (addresses.length === 0) return `${host} does not resolve`;
      const refused = addresses.find(({ address }) => isPrivateAddress(address));
      return refused ? `${host} resolves to ${refused.address}, which is not a public address` : null;
    } catch {
      return `${host} does not resolve`;
    }
  }

  /** Throws AddressRefused for an address this guard does not let a delivery connect to. */
  checkAddress(address: string): void {
    if (!this.allowPrivate && isPrivateAddress(address))
      throw new AddressRefused(`refused to connect to ${address}: not a public address`);
  }

  /** A `lookup` for http.request: resolves with the guard's resolver and refuses private addresses. */
  readonly lookup: LookupFunction = (hostname, options, callback) => {
    this.resolve(hostname).then(
      (addresses) => {
        try {
          if (addresses.length === 0) throw new Error(`${hostname} does not resolve`);
          for (const { address } of addresses) this.checkAddress(address);
        } catch (error) {
          callback(error as NodeJS.ErrnoException, '', 0);
          return;
        }
        const wanted = options.family === 4 || options.family === 6 ? options.family : 0;
        const matching = addresses.filter(({ family }) => wanted === 0 || family === wanted);
        if (options.all) (callback as unknown as (e: null, a: ResolvedAddress[]) => void)(null, matching);
        else callback(null, matching[0]?.address ?? '', matching[0]?.family ?? 4);
      },
      (error: unknown) => callback(error as NodeJS.ErrnoException, '', 0),
    );
  };
}
