/**
 * A Check request in the pipeline's terms, free of Envoy's message types.
 * The Envoy adapter builds it from a CheckRequest.
 */
export interface AuthRequest {
  /** Envoy's `x-request-id`, for the decision log; empty when absent. */
  requestId: string;
  /** Raw request target as Envoy sends it, query string included. */
  path: string;
  /** HTTP method. */
  method: string;
  headers: RequestHeaders;
  /** IP address of the downstream peer (`source.address`), IPv4-mapped IPv6 unmapped; undefined when not an IP socket. */
  sourceAddress: string | undefined;
  /** `source.certificate`: the URL-encoded PEM of the verified peer leaf, or empty. */
  peerCertificate: string;
  /** Sum of header name and value lengths, for the request limits. */
  headerBytes: number;
  /** Number of header entries as Envoy sent them. */
  headerCount: number;
}

/**
 * Request headers by lower-case name. Each name keeps every value it arrived
 * with: Envoy's `headers` map gives one comma-joined value, its `header_map`
 * one entry per header line.
 */
export class RequestHeaders {
  readonly #values = new Map<string, string[]>();

  add(name: string, value: string): void {
    const key = name.toLowerCase();
    const list = this.#values.get(key);
    if (list) {
      list.push(value);
    } else {
      this.#values.set(key, [value]);
    }
  }

  /** Returns all values of a header, in arrival order, or an empty list when absent. */
  all(name: string): readonly string[] {
    return this.#values.get(name.toLowerCase()) ?? [];
  }

  /** Returns the single value of a header, undefined when absent, or `null` when the header arrived more than once. */
  single(name: string): string | undefined | null {
    const list = this.#values.get(name.toLowerCase());
    if (!list) {
      return undefined;
    }
    return list.length === 1 ? list[0] : null;
  }

  has(name: string): boolean {
    return this.#values.has(name.toLowerCase());
  }

  names(): IterableIterator<string> {
    return this.#values.keys();
  }
}
