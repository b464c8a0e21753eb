import { isIP } from 'node:net';

/** A listen address `HOST:PORT` or `[IPv6]:PORT`; port 0 picks a free port. */
export interface ListenAddress {
  host: string;
  port: number;
}

export function parseListenAddress(address: string): { value?: ListenAddress; problem?: string } {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:\[\]]+)):(\d{1,5})$/.exec(address);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) {
    return { problem: `"${address}" is not HOST:PORT; write for example 127.0.0.1:9191 or [::1]:9191` };
  }
  const host = match[1] ?? match[2];
  if (match[1] !== undefined && isIP(host) !== 6) {
    return { problem: `"${host}" in brackets is not an IPv6 address` };
  }
  return { value: { host, port } };
}
