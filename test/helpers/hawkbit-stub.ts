/**
 * A stand-in for hawkBit's HTTP server on loopback that records every request
 * it receives. With `headerAuth` set it also applies hawkBit 1.0's
 * reverse-proxy header authentication to DDI paths, so a test sees whether
 * hawkBit would have accepted what the edge forwarded:
 * - the request must come from an address in `trustedIPs`;
 * - the controller-id header must equal the controller id in the path;
 * - the authority header, split on "," or ";", lower-cased and trimmed, must
 *   contain an entry of `trustedAuthorities`; without it, `NAME-0`, `NAME-1`,
 *   ... are read until the first missing index.
 * Header names match without regard to case and only the first copy of a
 * repeated header counts, as with `HttpServletRequest.getHeader`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface HeaderAuthSettings {
  controllerIdHeader: string;
  authorityHeader: string;
  /** Values of the tenant's `authentication.header.authority`, compared lower-cased. */
  trustedAuthorities: string[];
  /** `hawkbit.server.ddi.security.rp.trustedIPs`. */
  trustedIPs: string[];
}

export interface RecordedRequest {
  method: string;
  /** Request target as received, with the query string. */
  path: string;
  /** Every header line in arrival order, names lower-cased. */
  rawHeaders: Array<[string, string]>;
  /** The first value of each header, names lower-cased. */
  headers: Record<string, string>;
  remoteAddress: string;
  body: string;
  /** The DDI controller id hawkBit authenticated by headers; undefined when it did not or the path is not DDI. */
  authenticatedControllerId?: string;
}

/** `/{tenant}/controller/v1/{controllerId}/...` as hawkBit's authentication filters match it. */
const DDI_PATH = /^\/([^/]+)\/controller\/v1\/([^/?]+)(?:[/?]|$)/;

export class HawkbitStub {
  readonly received: RecordedRequest[] = [];
  readonly #server: Server;
  #port = 0;

  constructor(private readonly headerAuth?: HeaderAuthSettings) {
    this.#server = createServer((request, response) => this.#handle(request, response));
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(0, '127.0.0.1', () => resolve());
    });
    this.#port = (this.#server.address() as AddressInfo).port;
  }

  get port(): number {
    return this.#port;
  }

  /** Forgets the requests recorded so far. */
  reset(): void {
    this.received.length = 0;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }

  #handle(request: IncomingMessage, response: ServerResponse): void {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const rawHeaders: Array<[string, string]> = [];
      for (let i = 0; i < request.rawHeaders.length; i += 2) {
        rawHeaders.push([request.rawHeaders[i].toLowerCase(), request.rawHeaders[i + 1]]);
      }
      const headers: Record<string, string> = {};
      for (const [name, value] of rawHeaders) {
        headers[name] ??= value;
      }
      const recorded: RecordedRequest = {
        method: request.method ?? '',
        path: request.url ?? '',
        rawHeaders,
        headers,
        remoteAddress: request.socket.remoteAddress ?? '',
        body: Buffer.concat(chunks).toString('utf8'),
      };
      this.received.push(recorded);

      const ddi = DDI_PATH.exec(recorded.path);
      if (ddi && this.headerAuth) {
        const controllerId = this.#authenticate(recorded, decodeURIComponent(ddi[2]));
        if (controllerId === undefined) {
          response.writeHead(401).end();
          return;
        }
        recorded.authenticatedControllerId = controllerId;
        response.writeHead(200, { 'content-type': 'application/hal+json' }).end(JSON.stringify({ config: { polling: { sleep: '00:05:00' } }, _links: {} }));
        return;
      }
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ stub: 'hawkbit', path: recorded.path }));
    });
  }

  /** Returns the controller id when hawkBit's header authentication would accept the request. */
  #authenticate(request: RecordedRequest, pathControllerId: string): string | undefined {
    const settings = this.headerAuth!;
    const remote = request.remoteAddress.replace(/^::ffff:/, '');
    if (!settings.trustedIPs.includes(remote)) {
      return undefined;
    }
    const controllerId = request.headers[settings.controllerIdHeader.toLowerCase()];
    if (controllerId !== pathControllerId) {
      return undefined;
    }
    const trusted = settings.trustedAuthorities.map((value) => value.trim().toLowerCase());
    const matches = (value: string | undefined): boolean =>
      value !== undefined && value.split(/[;,]/).some((item) => trusted.includes(item.trim().toLowerCase()));

    const authorityName = settings.authorityHeader.toLowerCase();
    if (authorityName in request.headers) {
      return matches(request.headers[authorityName]) ? controllerId : undefined;
    }
    let index = `${authorityName}-0` in request.headers ? 0 : 1;
    while (`${authorityName}-${index}` in request.headers) {
      if (matches(request.headers[`${authorityName}-${index}`])) {
        return controllerId;
      }
      index++;
    }
    return undefined;
  }
}
