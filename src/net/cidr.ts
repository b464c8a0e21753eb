import { BlockList, isIP } from 'node:net';

const COLON = 0x3a;

/** Converts an IPv4-mapped IPv6 address (`::ffff:192.0.2.1`) to plain IPv4; other addresses pass unchanged. */
export function normalizeIp(address: string): string {
  // The mapped form starts with a colon and no IPv4 address does, so an IPv4 source skips the regular expression.
  if (address.charCodeAt(0) !== COLON) {
    return address;
  }
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  return mapped ? mapped[1] : address;
}

export type CidrParse = { ok: true; address: string; prefix: number; family: 'ipv4' | 'ipv6' } | { ok: false; problem: string };

/** Parses `ADDRESS` or `ADDRESS/PREFIX`; a bare address is a single host. */
export function parseCidr(entry: string): CidrParse {
  const [rawAddress, rawPrefix, extra] = entry.trim().split('/');
  const address = normalizeIp(rawAddress ?? '');
  const version = isIP(address);
  if (version === 0 || extra !== undefined) {
    return { ok: false, problem: `"${entry}" is not an IP address or CIDR; write for example 10.0.0.5 or 10.0.0.0/8 or fd00::/8` };
  }
  const max = version === 4 ? 32 : 128;
  let prefix = max;
  if (rawPrefix !== undefined) {
    prefix = /^\d{1,3}$/.test(rawPrefix) ? Number(rawPrefix) : NaN;
    if (!(prefix >= 0 && prefix <= max)) {
      return { ok: false, problem: `"${entry}" has an invalid prefix length; use 0 to ${max}` };
    }
  }
  return { ok: true, address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

/** A set of addresses and CIDRs; IPv4-mapped IPv6 addresses match their IPv4 form. */
export class AddressSet {
  readonly #list = new BlockList();
  readonly size: number;

  /** Throws on an invalid entry; the configuration loader has already named it. */
  constructor(entries: readonly string[]) {
    for (const entry of entries) {
      const parsed = parseCidr(entry);
      if (!parsed.ok) {
        throw new Error(parsed.problem);
      }
      this.#list.addSubnet(parsed.address, parsed.prefix, parsed.family);
    }
    this.size = entries.length;
  }

  has(address: string | undefined): boolean {
    if (!address || this.size === 0) {
      return false;
    }
    const ip = normalizeIp(address);
    const version = isIP(ip);
    if (version === 0) {
      return false;
    }
    return this.#list.check(ip, version === 4 ? 'ipv4' : 'ipv6');
  }
}
