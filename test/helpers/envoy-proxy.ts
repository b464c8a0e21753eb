/**
 * A TLS-terminating test proxy on loopback that replaces Envoy with the
 * settings of envoy/envoy.yaml, so the end-to-end tests can run without an
 * Envoy binary. For each request it does what that bootstrap tells Envoy to
 * do, in Envoy's order:
 *
 * 1. TLS: asks for a client certificate, accepts a connection without one,
 *    and closes a connection whose certificate does not chain to the device
 *    CA bundle before any request is read.
 * 2. Connection manager: rejects %2F and %5C in the path with 400, merges
 *    slashes and removes dot segments; sets x-request-id, x-forwarded-proto
 *    and x-forwarded-for; replaces x-forwarded-client-cert as SANITIZE_SET
 *    does (removed when there is no client certificate).
 * 3. Route: the first route whose pattern matches the path (query removed).
 * 4. ext_authz, unless the route disables it: a CheckRequest built as
 *    Envoy's gRPC client builds it, sent with a deadline. A failed RPC gets
 *    `statusOnError` (fail closed), a denial gets its status and body, an
 *    allow has its header mutations applied as Envoy 1.36 applies them.
 * 5. Router: the route's request_headers_to_remove, then the request goes to
 *    the upstream over HTTP/1.1.
 *
 * It differs from Envoy where a test cannot tell: the rejected TLS
 * connection is closed without a TLS alert (Node checks client certificates
 * only after the handshake, as its own rejectUnauthorized does), only
 * HTTP/1.1 is served, and `append_action` is ignored as in Envoy 1.36.
 */
import { createHash, randomUUID, X509Certificate } from 'node:crypto';
import { request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/** The repository's proto/ folder, from test/helpers/ or dist/test/helpers/. */
const PROTO_DIR = fileURLToPath(new URL(import.meta.url.includes('/dist/') ? '../../../proto/' : '../../proto/', import.meta.url));

export interface ProxyRoute {
  name: string;
  /** Whether the route applies to a path (without query string). */
  matches(path: string): boolean;
  /** false where typed_per_filter_config disables ext_authz. */
  extAuthz: boolean;
  /** The route's request_headers_to_remove, applied after ext_authz. */
  removeHeaders: string[];
}

export interface EnvoyProxyOptions {
  /** `HOST:PORT` of the ext_authz gRPC service. */
  authzAddress: string;
  /** hawkBit (or a stand-in) on loopback. */
  upstreamPort: number;
  /** PEM of the server certificate chain and key. */
  serverCert: string;
  serverKey: string;
  /** PEM bundle of the CAs that device certificates must chain to. */
  deviceCa: string;
  routes: ProxyRoute[];
  /** ext_authz grpc_service.timeout, in ms. Default 200, Envoy's default. */
  checkTimeoutMs?: number;
  /** status_on_error: HTTP status when the Check RPC fails. Default 403, Envoy's default. */
  statusOnError?: number;
}

/** What the proxy did with one request, for assertions. */
export interface ProxyExchange {
  path: string;
  route?: string;
  /** The CheckRequest sent, when ext_authz ran. */
  checkRequest?: Record<string, unknown>;
  /** The CheckResponse received. */
  checkResponse?: Record<string, unknown>;
  /** The gRPC error, when the Check failed. */
  checkError?: grpc.ServiceError;
  /** HTTP status returned to the client. */
  status?: number;
  /** true when the request went to the upstream. */
  forwarded: boolean;
}

/** Header name → values in arrival order, names lower-cased, as in Envoy's header map. */
type HeaderMap = Map<string, string[]>;

export class EnvoyLikeProxy {
  readonly exchanges: ProxyExchange[] = [];
  /** Connections closed because the client certificate did not verify. */
  readonly rejectedHandshakes: string[] = [];
  readonly #server: Server;
  readonly #client: grpc.Client & Record<string, unknown>;
  #streamId = 0;
  #port = 0;

  constructor(private readonly options: EnvoyProxyOptions) {
    this.#server = createServer(
      {
        cert: options.serverCert,
        key: options.serverKey,
        ca: options.deviceCa,
        // Ask for a client certificate but let clients without one connect
        // (require_client_certificate: false). A certificate that is
        // presented is checked in the secureConnection listener below.
        requestCert: true,
        rejectUnauthorized: false,
        minVersion: 'TLSv1.2',
      },
      (request, response) => {
        this.#handle(request, response).catch((error: unknown) => {
          response.writeHead(500).end(`proxy error: ${String(error)}`);
        });
      },
    );
    // Runs before the HTTP server's own listener, so no request is read from a rejected connection.
    this.#server.prependListener('secureConnection', (socket: TLSSocket) => {
      const presented = Object.keys(socket.getPeerCertificate()).length > 0;
      if (presented && !socket.authorized) {
        this.rejectedHandshakes.push(String(socket.authorizationError));
        socket.destroy();
      }
    });

    const definition = protoLoader.loadSync(['envoy/service/auth/v3/external_auth.proto'], {
      includeDirs: [PROTO_DIR],
      keepCase: true,
      longs: String,
      defaults: false,
      oneofs: true,
    });
    const loaded = grpc.loadPackageDefinition(definition) as unknown as {
      envoy: { service: { auth: { v3: { Authorization: grpc.ServiceClientConstructor } } } };
    };
    const Authorization = loaded.envoy.service.auth.v3.Authorization;
    this.#client = new Authorization(options.authzAddress, grpc.credentials.createInsecure()) as grpc.Client & Record<string, unknown>;
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

  async stop(): Promise<void> {
    this.#client.close();
    await new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }

  async #handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const socket = request.socket as TLSSocket;
    const exchange: ProxyExchange = { path: request.url ?? '', forwarded: false };
    this.exchanges.push(exchange);
    const reply = (status: number, body = '', headers: OutgoingHttpHeaders = {}): void => {
      exchange.status = status;
      response.writeHead(status, { 'content-type': 'text/plain', ...headers }).end(body);
    };

    // 2. Connection manager: path checks and the headers it sets before any filter.
    const rawTarget = request.url ?? '/';
    const queryStart = rawTarget.indexOf('?');
    const rawPath = queryStart < 0 ? rawTarget : rawTarget.slice(0, queryStart);
    const query = queryStart < 0 ? '' : rawTarget.slice(queryStart);
    if (/%2f|%5c/i.test(rawPath)) {
      reply(400, 'Bad Request');
      return;
    }
    const path = normalizePath(rawPath) + query;
    exchange.path = path;

    const headers = headerMap(request.rawHeaders);
    const authority = headers.get('host')?.[0] ?? `127.0.0.1:${this.#port}`;
    headers.delete('host');
    headers.set(':method', [request.method ?? 'GET']);
    headers.set(':path', [path]);
    headers.set(':authority', [authority]);
    headers.set(':scheme', ['https']);
    headers.set('x-forwarded-proto', ['https']);
    headers.set('x-request-id', [randomUUID()]);
    const remoteAddress = (socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    const forwardedFor = headers.get('x-forwarded-for')?.join(',');
    headers.set('x-forwarded-for', [forwardedFor ? `${forwardedFor},${remoteAddress}` : remoteAddress]);
    const peer = peerCertificates(socket);
    headers.delete('x-forwarded-client-cert');
    if (peer.length > 0) {
      headers.set('x-forwarded-client-cert', [xfccElement(peer)]);
    }

    // 3. Route.
    const route = this.options.routes.find((candidate) => candidate.matches(path.split('?')[0]));
    if (!route) {
      reply(404, 'no route');
      return;
    }
    exchange.route = route.name;

    // 4. ext_authz.
    if (route.extAuthz) {
      const checkRequest = this.#checkRequest(request, socket, headers, path, authority, peer);
      exchange.checkRequest = checkRequest;
      let checkResponse: Record<string, unknown>;
      try {
        checkResponse = await this.#check(checkRequest);
      } catch (error) {
        // failure_mode_allow: false
        exchange.checkError = error as grpc.ServiceError;
        reply(this.options.statusOnError ?? 403);
        return;
      }
      exchange.checkResponse = checkResponse;
      const status = (checkResponse.status ?? {}) as { code?: number };
      if ((status.code ?? 0) !== 0) {
        const denied = (checkResponse.denied_response ?? {}) as { status?: { code?: number }; headers?: HeaderValueOption[]; body?: string };
        const httpStatus = denied.status?.code && denied.status.code > 0 ? denied.status.code : 403;
        const deniedHeaders: OutgoingHttpHeaders = {};
        for (const option of denied.headers ?? []) {
          deniedHeaders[option.header.key.toLowerCase()] = headerValue(option);
        }
        reply(httpStatus, denied.body ?? '', deniedHeaders);
        return;
      }
      applyOkResponse(headers, (checkResponse.ok_response ?? {}) as OkResponse);
    }

    // 5. Router.
    for (const name of route.removeHeaders) {
      headers.delete(name.toLowerCase());
    }
    await this.#forward(request, response, headers, exchange);
  }

  #checkRequest(request: IncomingMessage, socket: TLSSocket, headers: HeaderMap, path: string, authority: string, peer: X509Certificate[]): Record<string, unknown> {
    const flat: Record<string, string> = {};
    for (const [name, values] of headers) {
      flat[name] = values.join(',');
    }
    const leaf = peer[0];
    return {
      attributes: {
        source: {
          address: { socket_address: { address: (socket.remoteAddress ?? '').replace(/^::ffff:/, ''), port_value: socket.remotePort ?? 0 } },
          principal: leaf ? principalOf(leaf) : '',
          certificate: leaf ? urlEncodePem(leaf.toString()) : '',
        },
        destination: {
          address: { socket_address: { address: socket.localAddress ?? '', port_value: socket.localPort ?? 0 } },
        },
        request: {
          time: { seconds: String(Math.floor(Date.now() / 1000)), nanos: 0 },
          http: {
            id: String(++this.#streamId),
            method: request.method ?? 'GET',
            headers: flat,
            path,
            host: authority,
            scheme: 'https',
            size: '0',
            protocol: `HTTP/${request.httpVersion}`,
          },
        },
      },
    };
  }

  #check(checkRequest: Record<string, unknown>): Promise<Record<string, unknown>> {
    const deadline = Date.now() + (this.options.checkTimeoutMs ?? 200);
    return new Promise((resolve, reject) => {
      const call = this.#client.Check as (request: unknown, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, response: Record<string, unknown>) => void) => void;
      call.call(this.#client, checkRequest, { deadline }, (error, response) => (error ? reject(error) : resolve(response)));
    });
  }

  #forward(request: IncomingMessage, response: ServerResponse, headers: HeaderMap, exchange: ProxyExchange): Promise<void> {
    const outgoing: OutgoingHttpHeaders = {};
    for (const [name, values] of headers) {
      if (name.startsWith(':')) {
        continue;
      }
      outgoing[name] = values.length === 1 ? values[0] : values;
    }
    outgoing.host = headers.get(':authority')?.[0];
    return new Promise((resolve, reject) => {
      const upstream = httpRequest(
        { host: '127.0.0.1', port: this.options.upstreamPort, method: headers.get(':method')?.[0], path: headers.get(':path')?.[0], headers: outgoing },
        (upstreamResponse) => {
          exchange.forwarded = true;
          exchange.status = upstreamResponse.statusCode;
          response.writeHead(upstreamResponse.statusCode ?? 502, upstreamResponse.headers);
          upstreamResponse.pipe(response);
          upstreamResponse.on('end', resolve);
        },
      );
      upstream.on('error', reject);
      request.pipe(upstream);
    });
  }
}

interface HeaderValueOption {
  header: { key: string; value?: string; raw_value?: Buffer };
  append?: { value?: boolean } | null;
}

interface OkResponse {
  headers?: HeaderValueOption[];
  headers_to_remove?: string[];
}

function headerValue(option: HeaderValueOption): string {
  if (option.header.value) {
    return option.header.value;
  }
  return option.header.raw_value ? option.header.raw_value.toString('utf8') : '';
}

/**
 * Applies OkHttpResponse header mutations as Envoy 1.36 does. `append: true`
 * appends to an existing header and adds nothing when it is absent, while
 * `append` unset or false overwrites or adds. Removals run afterwards and
 * never touch pseudo-headers or host.
 */
function applyOkResponse(headers: HeaderMap, ok: OkResponse): void {
  for (const option of ok.headers ?? []) {
    const name = option.header.key.toLowerCase();
    const value = headerValue(option);
    if (option.append?.value === true) {
      const existing = headers.get(name);
      if (existing) {
        existing.push(value);
      }
    } else {
      headers.set(name, [value]);
    }
  }
  for (const raw of ok.headers_to_remove ?? []) {
    const name = raw.toLowerCase();
    if (!name.startsWith(':') && name !== 'host') {
      headers.delete(name);
    }
  }
}

function headerMap(rawHeaders: string[]): HeaderMap {
  const map: HeaderMap = new Map();
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i].toLowerCase();
    const values = map.get(name) ?? [];
    values.push(rawHeaders[i + 1]);
    map.set(name, values);
  }
  return map;
}

/** normalize_path (RFC 3986 dot-segment removal) and merge_slashes, on a path without query. */
export function normalizePath(path: string): string {
  const merged = path.replace(/\/{2,}/g, '/');
  const output: string[] = [];
  const segments = merged.split('/').slice(1);
  segments.forEach((segment, index) => {
    const last = index === segments.length - 1;
    if (segment === '.') {
      if (last) {
        output.push('');
      }
    } else if (segment === '..') {
      output.pop();
      if (last) {
        output.push('');
      }
    } else {
      output.push(segment);
    }
  });
  return `/${output.join('/')}`;
}

/** The peer's certificate chain as sent, leaf first; empty without a client certificate. */
function peerCertificates(socket: TLSSocket): X509Certificate[] {
  const detailed = socket.getPeerCertificate(true) as unknown as { raw?: Buffer; issuerCertificate?: unknown };
  const chain: X509Certificate[] = [];
  let current = detailed;
  const seen = new Set<string>();
  while (current?.raw && !seen.has(current.raw.toString('base64'))) {
    seen.add(current.raw.toString('base64'));
    chain.push(new X509Certificate(current.raw));
    current = current.issuerCertificate as typeof detailed;
  }
  return chain;
}

/** Envoy's URL encoding of PEM for source.certificate and XFCC: exactly \n, space, +, / and = escaped. */
export function urlEncodePem(pem: string): string {
  const escapes: Record<string, string> = { '\n': '%0A', ' ': '%20', '+': '%2B', '/': '%2F', '=': '%3D' };
  return pem.replace(/[\n +/=]/g, (character) => escapes[character]);
}

/** RFC 2253 form of the subject: attributes in reverse order, comma-separated, special characters escaped. */
function rfc2253Subject(certificate: X509Certificate): string {
  return certificate.subject
    .split('\n')
    .filter((line) => line !== '')
    .reverse()
    .map((line) => {
      const separator = line.indexOf('=');
      const value = line.slice(separator + 1).replace(/([,+"\\<>;])/g, '\\$1');
      return `${line.slice(0, separator)}=${value}`;
    })
    .join(',');
}

function sans(certificate: X509Certificate, kind: 'URI' | 'DNS'): string[] {
  return (certificate.subjectAltName ?? '')
    .split(', ')
    .filter((entry) => entry.startsWith(`${kind}:`))
    .map((entry) => entry.slice(kind.length + 1));
}

/** source.principal: the first URI SAN, else the first DNS SAN, else the RFC 2253 subject. */
function principalOf(certificate: X509Certificate): string {
  return sans(certificate, 'URI')[0] ?? sans(certificate, 'DNS')[0] ?? rfc2253Subject(certificate);
}

/** One XFCC element as SANITIZE_SET with subject, cert, chain, uri and dns writes it. */
function xfccElement(chain: X509Certificate[]): string {
  const leaf = chain[0];
  const pairs = [
    `Hash=${createHash('sha256').update(leaf.raw).digest('hex')}`,
    `Cert="${urlEncodePem(leaf.toString())}"`,
    `Chain="${urlEncodePem(chain.map((certificate) => certificate.toString()).join(''))}"`,
    `Subject="${rfc2253Subject(leaf).replace(/"/g, '\\"')}"`,
    `URI=${sans(leaf, 'URI')[0] ?? ''}`,
    ...sans(leaf, 'DNS').map((name) => `DNS=${name}`),
  ];
  return pairs.join(';');
}

/**
 * Reads the routes of the first virtual host of the first ext_authz
 * connection manager in a parsed Envoy bootstrap: prefix, path and
 * safe_regex matches, per-route ext_authz disabling and header removals.
 */
export function routesFromBootstrap(bootstrap: unknown): ProxyRoute[] {
  const listeners = (bootstrap as { static_resources: { listeners: Array<Record<string, unknown>> } }).static_resources.listeners;
  for (const listener of listeners) {
    for (const chain of listener.filter_chains as Array<{ filters: Array<{ typed_config: Record<string, unknown> }> }>) {
      for (const filter of chain.filters) {
        const hcm = filter.typed_config;
        const filters = (hcm.http_filters ?? []) as Array<{ name: string }>;
        if (!filters.some((entry) => entry.name === 'envoy.filters.http.ext_authz')) {
          continue;
        }
        const virtualHost = (hcm.route_config as { virtual_hosts: Array<{ routes: Array<Record<string, unknown>> }> }).virtual_hosts[0];
        return virtualHost.routes.map((route, index) => {
          const match = route.match as { prefix?: string; path?: string; safe_regex?: { regex: string } };
          const perFilter = (route.typed_per_filter_config ?? {}) as Record<string, { disabled?: boolean }>;
          let matches: (path: string) => boolean;
          if (match.prefix !== undefined) {
            const prefix = match.prefix;
            matches = (path) => path.startsWith(prefix);
          } else if (match.path !== undefined) {
            const exact = match.path;
            matches = (path) => path === exact;
          } else if (match.safe_regex) {
            const regex = new RegExp(`^(?:${match.safe_regex.regex})$`);
            matches = (path) => regex.test(path);
          } else {
            throw new Error(`route ${index} has a match this proxy does not implement`);
          }
          return {
            name: String(route.name ?? index),
            matches,
            extAuthz: perFilter['envoy.filters.http.ext_authz']?.disabled !== true,
            removeHeaders: (route.request_headers_to_remove ?? []) as string[],
          };
        });
      }
    }
  }
  throw new Error('no connection manager with ext_authz in the bootstrap');
}
